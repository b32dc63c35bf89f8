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

and the bad-input corpus in tests/fixtures/bad/ (tests/bad_inputs.rs asserts the outcome of each):

  bars.jpg           64x48 baseline JPEG, four vertical bars red/green/blue/white: the intact original
  bars_cut_N.jpg     bars.jpg cut after N% of its bytes (N = 10, 50, 90) and 2 bytes short (cut_eoi)
  bars_progressive_cut_50.jpg   the same picture as a progressive JPEG, cut in half
  bars_garbage_between_markers.jpg   bars.jpg with 16 junk bytes between two header segments
  bars_bad_huffman.jpg   bars.jpg with its entropy-coded data overwritten by 0xFF00 runs
  bars_no_dht.jpg    bars.jpg without its DHT (Huffman table) segments, as many MJPEG webcams send frames
  one_pixel.jpg      1x1 JPEG (255, 255, 0)
  huge_header.jpg    a JPEG whose SOF0 claims 100000x100000 pixels
  empty.jpg          0 bytes
  text.jpg           a text file named .jpg
  html.png           an HTML error page named .png (what a failed HTTP download leaves)
  png_bad_crc.png    a PNG whose IDAT checksum is wrong
  png_cut.png        a PNG cut inside its IDAT
  png_short_palette.png   an 8x8 palette PNG whose PLTE holds 7 bytes (2 1/3 RGB entries): the png
                     crate 0.18.1 panics on it (found by fuzzing; image-rs/image-png#694)
  gif_anim.gif       a two-frame animated GIF (the first frame is used), 8x8 red then blue
  webp_lossless.webp 8x8 lossless WebP (0, 128, 255)
  tiff_rgb.tif       8x8 RGB TIFF (200, 100, 50)
  bmp_rgb.bmp        8x8 BMP (1, 2, 3)

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


def short_palette_png():
    """8x8, 1 bit per pixel, palette (colour type 3), with a 7-byte PLTE."""
    ihdr = struct.pack(">IIBBBBB", 8, 8, 1, 3, 0, 0, 0)
    rows = bytes([0, 0b10101010]) * 8
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"PLTE", bytes([255, 255, 255, 255, 10, 200, 30]))
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


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
    bad_inputs(os.path.join(OUT, "bad"))
    print("wrote", OUT)


def jpeg_segments(data):
    """Splits a JPEG into (marker, bytes) header segments up to SOS, then the rest."""
    out, i = [(0xD8, data[:2])], 2
    while i < len(data):
        assert data[i] == 0xFF, i
        m = data[i + 1]
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m == 0xDA:
            out.append((m, data[i:]))
            return out
        out.append((m, data[i:i + 2 + n]))
        i += 2 + n
    return out


def bad_inputs(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    bars = Image.new("RGB", (64, 48), (255, 0, 0))
    for x0, c in [(16, (0, 255, 0)), (32, (0, 0, 255)), (48, (255, 255, 255))]:
        bars.paste(Image.new("RGB", (16, 48), c), (x0, 0))
    bars.save(p("bars.jpg"), quality=95, subsampling=0)
    data = open(p("bars.jpg"), "rb").read()
    for pct in (10, 50, 90):
        open(p("bars_cut_%d.jpg" % pct), "wb").write(data[: len(data) * pct // 100])
    open(p("bars_cut_eoi.jpg"), "wb").write(data[:-2])
    bars.save(p("prog.jpg"), quality=95, progressive=True)
    prog = open(p("prog.jpg"), "rb").read()
    os.remove(p("prog.jpg"))
    open(p("bars_progressive_cut_50.jpg"), "wb").write(prog[: len(prog) // 2])
    segs = jpeg_segments(data)
    junk = b"camtrapd-junk!!!"
    open(p("bars_garbage_between_markers.jpg"), "wb").write(segs[0][1] + segs[1][1] + junk + b"".join(s for _, s in segs[2:]))
    sos = segs[-1][1]
    hdr = 2 + struct.unpack(">H", sos[2:4])[0]
    scan = sos[hdr:-2]
    bad_scan = (b"\xff\x00" * (len(scan) // 2 + 1))[: len(scan)]
    open(p("bars_bad_huffman.jpg"), "wb").write(b"".join(s for _, s in segs[:-1]) + sos[:hdr] + bad_scan + b"\xff\xd9")
    open(p("bars_no_dht.jpg"), "wb").write(b"".join(s for m, s in segs if m != 0xC4))
    Image.new("RGB", (1, 1), (255, 255, 0)).save(p("one_pixel.jpg"), quality=95)
    # SOF0 patched to 100000x100000 (0x186A0 does not fit 16 bits: 65500 per side is the format's limit).
    huge = bytearray(data)
    i = bytes(huge).index(b"\xff\xc0")
    huge[i + 5:i + 9] = struct.pack(">HH", 65500, 65500)
    open(p("huge_header.jpg"), "wb").write(bytes(huge))
    open(p("empty.jpg"), "wb").close()
    open(p("text.jpg"), "w").write("this is not an image\n")
    open(p("html.png"), "w").write("<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(p("ok.png"))
    png = bytearray(open(p("ok.png"), "rb").read())
    os.remove(p("ok.png"))
    j = bytes(png).index(b"IDAT")
    n = struct.unpack(">I", png[j - 4:j])[0]
    crc = j + 4 + n
    png[crc:crc + 4] = bytes(b ^ 0xFF for b in png[crc:crc + 4])
    open(p("png_bad_crc.png"), "wb").write(bytes(png))
    big = Image.new("RGB", (64, 64))
    big.putdata([((x * 4) % 256, (y * 4) % 256, (x * y) % 256) for y in range(64) for x in range(64)])
    big.save(p("full.png"))
    full = open(p("full.png"), "rb").read()
    os.remove(p("full.png"))
    j = full.index(b"IDAT")
    open(p("png_cut.png"), "wb").write(full[: j + 4 + 40])
    open(p("png_short_palette.png"), "wb").write(short_palette_png())
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(p("gif_anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.new("RGB", (8, 8), (0, 128, 255)).save(p("webp_lossless.webp"), lossless=True)
    Image.new("RGB", (8, 8), (200, 100, 50)).save(p("tiff_rgb.tif"))
    Image.new("RGB", (8, 8), (1, 2, 3)).save(p("bmp_rgb.bmp"))


if __name__ == "__main__":
    main()
