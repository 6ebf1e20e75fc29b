"""Post-processing: detections and NMS (:mod:`.nms`), box-local masks (:mod:`.masks`), COCO RLE (:mod:`.rle`)."""
