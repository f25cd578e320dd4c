"""QR codes for payment URIs, rendered locally to PNG (no third-party service)."""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M

__all__ = ["qr_png"]


def qr_png(data: str, *, box_size: int = 8, border: int = 2) -> bytes:
    """PNG bytes of a QR code for ``data``; CPU-bound, so call it via ``to_thread``."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(data)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()
