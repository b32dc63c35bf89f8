#!/usr/bin/env python3
"""Generate the small synthetic images in tests/fixtures/ (no third-party files).

Each image has a known content so tests can assert decoded pixel values:

  grey_ir.jpg        greyscale (L) JPEG, like an infrared night frame: left half 40, right half 200
  cmyk.jpg           CMYK JPEG, 32x16: left half red (C0 M255 Y255 K0), right half blue (C255 M255 Y0 K0)
  exif_rot6.jpg      40x20 RGB JPEG, left half red / right half blue, EXIF Orientation = 6
                     (displayed rotated 90 degrees clockwise: 20x40, red on top)
  rgba.png           RGBA PNG 8x8, opaque green with a half-transparent corner
  grey_alpha.png     LA PNG 8x8, grey 128
  grey16.png         16-bit greyscale PNG 8x8, value 0x8080 (-> 128 in 8 bits)
  rgb16.png          16-bit RGB PNG 8x8, (65535, 0, 32896)
  palette.png        palette (P) PNG 8x8, one colour (10, 200, 30)
  one_pixel.png      1x1 RGB PNG (255, 255, 0)
  huge_header.png    a PNG whose header claims 100000x100000 pixels, with no pixel data

Run with any Python that has Pillow:  python3 scripts/make_test_images.py
"""
import os
import struct
import zlib

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")


def halves(mode, size, left, right):
    img = Image.new(mode, size, left)
    w, h = size
    img.paste(Image.new(mode, (w - w // 2, h), right), (w // 2, 0))
    return img


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main():
    os.makedirs(OUT, exist_ok=True)
    halves("L", (32, 16), 40, 200).save(os.path.join(OUT, "grey_ir.jpg"), quality=95)
    halves("CMYK", (32, 16), (0, 255, 255, 0), (255, 255, 0, 0)).save(os.path.join(OUT, "cmyk.jpg"), quality=95)
    img = halves("RGB", (40, 20), (255, 0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(os.path.join(OUT, "exif_rot6.jpg"), quality=95, exif=exif)
    rgba = Image.new("RGBA", (8, 8), (0, 255, 0, 255))
    rgba.putpixel((0, 0), (0, 255, 0, 128))
    rgba.save(os.path.join(OUT, "rgba.png"))
    Image.new("LA", (8, 8), (128, 255)).save(os.path.join(OUT, "grey_alpha.png"))
    Image.new("I;16", (8, 8), 0x8080).save(os.path.join(OUT, "grey16.png"))
    # 16-bit RGB PNG written by hand (Pillow cannot write RGB 16-bit).
    row = b"\x00" + struct.pack(">HHH", 65535, 0, 32896) * 8
    raw = row * 8
    ihdr = struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    open(os.path.join(OUT, "rgb16.png"), "wb").write(data)
    Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(os.path.join(OUT, "palette.png"))
    Image.new("RGB", (1, 1), (255, 255, 0)).save(os.path.join(OUT, "one_pixel.png"))
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b"")
    open(os.path.join(OUT, "huge_header.png"), "wb").write(data)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
