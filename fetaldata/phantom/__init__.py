"""A synthetic phantom of FETAL_PLANES_DB and of a scanner's video-out (numpy + OpenCV only).

- :func:`fetaldata.phantom.dataset.write_phantom_dataset`: a dataset folder in the release's exact layout.
- :func:`fetaldata.phantom.render.render_image`: one exported B-mode image of a class.
- :func:`fetaldata.phantom.video.write_phantom_video`: a full-screen scanner recording with a truth sidecar.

The phantom exercises the software; it proves nothing clinical.
"""
