"""Live outputs over HTTP: the browser view of a run (``--serve``) and the WebRTC webcam service
(``rtseg serve --webrtc``). Starlette apps run by uvicorn on a thread of their own (:mod:`.server`)."""
