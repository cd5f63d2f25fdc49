"""What a vision-capable provider is shown: the one place that turns images into message content
(OpenAI-style `text` + `image_url` parts with base64 data URLs, which langchain also converts for
Anthropic and Ollama). The critic's contact sheet goes through it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # PIL loads only when an image is actually sent
    from PIL.Image import Image

def image_part(image: Image, fmt: Literal["PNG", "JPEG"] = "PNG", max_side: int | None = None) -> dict[str, Any]:
    """An `image_url` content part holding `image` as a base64 data URL.

    fmt: PNG for renders (sharp lines), JPEG for photos (5-10x smaller); max_side: downscale so
    the long side is at most this many pixels (None: as is).
    """
    img = image.convert("RGB")
    if max_side is not None and max(img.size) > max_side:
        s = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    url = f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def vision_content(text: str, images: Sequence[Image | dict[str, Any]]) -> list[dict[str, Any]]:
    """A user message's content: `text`, then the images (PIL images as PNG, or ready `image_part`s)."""
    return [{"type": "text", "text": text}, *(im if isinstance(im, dict) else image_part(im) for im in images)]
