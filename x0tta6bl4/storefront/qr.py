"""QR codes for payment URIs, rendered locally to PNG (no third-party service).

The module matrix comes from ``qrcode`` with a fixed mask pattern: every mask
is valid and every scanner reads all eight, while searching for the "best"
one costs five times the rest of the work.  The matrix is scaled up with
numpy and written by Pillow as a 1-bit PNG.
"""

from __future__ import annotations

import io

import numpy as np
import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M

__all__ = ["qr_png"]


def qr_png(data: str, *, box_size: int = 8, border: int = 2) -> bytes:
    """PNG bytes of a QR code for ``data``; CPU-bound, so call it via ``to_thread``."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=border, mask_pattern=0)
    code.add_data(data)
    code.make(fit=True)
    dark = np.array(code.get_matrix(), dtype=bool)
    pixels = np.kron(~dark, np.ones((box_size, box_size), dtype=bool))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
