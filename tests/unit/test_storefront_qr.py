"""QR codes decode back to the exact payment URI (read with zxing-cpp)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from x0tta6bl4.storefront.qr import qr_png

zxingcpp = pytest.importorskip("zxingcpp", reason="zxing-cpp is a dev extra: pip install -e .[dev]")


@pytest.mark.parametrize(
    "uri",
    [
        "ton://transfer/UQBvW8Z5huBkMJYdnfAEM5JqTNkuWX3diqYENkWsIL0XggGG?amount=1500123000&text=x0ab12cd34",
        "tron:TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t?token=TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t&amount=5.000123",
        "ton://transfer/EQ" + "A" * 46 + "?jetton=EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs"
        "&amount=5000017&text=x0zzzzzzzz",
    ],
)
def test_qr_decodes_to_the_payment_uri(uri: str) -> None:
    png = qr_png(uri)
    assert png.startswith(b"\x89PNG")
    image = Image.open(io.BytesIO(png))
    assert image.size[0] == image.size[1] and image.size[0] >= 200
    decoded = zxingcpp.read_barcodes(image.convert("L"))
    assert [code.text for code in decoded] == [uri]
