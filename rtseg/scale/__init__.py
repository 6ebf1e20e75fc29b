"""Scale-out: ``rtseg run --ray`` segments many sources across a Ray cluster, one whole source per worker, or
one long video cut into parts (``--split``); ``rtseg bench --ray`` measures how that scales.

:func:`rtseg.scale.cluster.run_on_ray` is the entry point (it imports Ray); :mod:`rtseg.scale.plan` holds what
is decided without Ray (tasks, resume, resources, tables); :mod:`rtseg.scale.worker` the worker actor, a
client of :func:`rtseg.load_model` and :func:`rtseg.run`; :mod:`rtseg.scale.split` cuts a video into parts and
joins them, :mod:`rtseg.scale.ranged` runs a part on a worker; :mod:`rtseg.scale.live` puts a live stream's
outputs in the out dir part by part while it runs; :mod:`rtseg.scale.storage` reads and writes paths or fsspec
URLs (``s3://``); :mod:`rtseg.scale.bench` the scaling benchmark.
"""
