"""Self-supervised training on one clip: training frames and (source, driving) pairs (dataset), the
loss terms (losses), the shared optimisation loop (loop) and the FOMM trainer with its checkpoints and
previews (trainer). The run as a whole (crop rule → frames → trainer) is :func:`fomm_kp.train`."""
