"""Motion transfer at the source's full resolution from a model that works at a lower one.

The networks run at the model's image size S (64, 128 or 256 px). The output is rendered at the
source's own size H × W with *detail transfer*:

    full = up(prediction) + v↑ · (warp(source_full, flow) − up(warp(source_S, flow)))

* ``up`` is bilinear resizing from S × S to H × W; the flow (where each output pixel takes the
  source from, normalised coordinates) is resized as a displacement field, so it means the same
  motion at every size;
* ``warp(source_full, flow)`` is the full-resolution source moved by that flow, and
  ``up(warp(source_S, flow))`` is the same at the model's resolution, upsampled: their difference is
  the detail the model's resolution lost (edges, texture, hair);
* ``v`` is the generator's visibility map (``GeneratorOutput.visibility``): the blend mask of a
  ``generator.blend`` model, or the occlusion map of a plain FOMM generator (1 = the source shows
  this pixel). Where the source is occluded the generator's own (upsampled, softer) pixels stay.

So the low frequencies — and everything the generator paints itself — come from the generator,
and the high frequencies of visible parts from the source's own pixels, moved by the same motion.
At S = H = W the formula is exactly the generator's output. With a ``blend`` generator it is,
up to the order of resizing and multiplying, ``v↑ · warp(source_full) + (1 − v↑) · up(decoded)``:
the full-resolution source where visible and the generator where not. Nothing is invented: a
region the source does not show is as sharp as the model's resolution allows and no sharper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fomm_kp.errors import FommError
from fomm_kp.models.generator import warp

__all__ = ["upsample_images", "full_resolution"]


def upsample_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of ``(B, C, h, w)`` images to ``height × width`` (no-op at the same size)."""
    if images.shape[-2:] == (height, width):
        return images
    return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)


def full_resolution(
    prediction: torch.Tensor, flow: torch.Tensor, visibility: torch.Tensor | None,
    source_model: torch.Tensor, source_full: torch.Tensor,
) -> torch.Tensor:
    """The generator's output brought to the full-resolution source's size by detail transfer.

    Args:
        prediction: the generator's output ``(B, 3, S, S)`` in [0, 1].
        flow: the dense flow ``(B, h, w, 2)`` the generator used (any h, w).
        visibility: ``(B, 1, S', S')`` in [0, 1] (any size; None: everything visible).
        source_model: the source as the model saw it, ``(1 or B, 3, S, S)`` in [0, 1].
        source_full: the same source at the output size, ``(1 or B, 3, H, W)`` in [0, 1].

    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    if prediction.ndim != 4 or source_full.ndim != 4 or source_model.ndim != 4:
        raise FommError("prediction and sources must be (B, 3, H, W) images")
    if source_model.shape[-2:] != prediction.shape[-2:]:
        raise FommError(f"the model-size source {tuple(source_model.shape)} does not match the prediction "
                        f"{tuple(prediction.shape)}")
    b = prediction.shape[0]
    height, width = source_full.shape[-2:]
    prediction = prediction.float()
    low = warp(source_model.float().expand(b, -1, -1, -1), flow)
    high = warp(source_full.float().expand(b, -1, -1, -1), flow)
    detail = high - upsample_images(low, height, width)
    if visibility is None:
        weight = torch.ones_like(detail[:, :1])
    else:
        weight = upsample_images(visibility.float(), height, width).clamp(0, 1)
    return (upsample_images(prediction, height, width) + weight * detail).clamp(0, 1)
