#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are committed; this script documents how they were made and regenerates them
(python3, ffmpeg, and a C compiler with libjpeg for the JPEG variants ffmpeg cannot write).
Seeds are kept small (a few KiB): libFuzzer mutates them and their size bounds its speed.
Larger real files (tests/golden/media, examples/, the golden cases) are added by run.sh.
"""
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ffmpeg(args, out):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + args + [out],
                   check=True)
    with open(out, "rb") as f:
        return f.read()


# ---- protobuf wire format (no protobuf module needed) ----

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, v):
    return varint(field << 3) + varint(v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def f_float(field, v):
    return varint(field << 3 | 5) + struct.pack("<f", v)


def f_packed(field, values):
    return f_bytes(field, b"".join(varint(v) for v in values))


def tensor(dtype, shape, data):
    return f_varint(1, dtype) + f_packed(2, shape) + f_bytes(3, data)


# ---- images ----

def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def insert_png_chunk(png, kind, body):
    ihdr_end = 8 + 12 + 13
    return png[:ihdr_end] + png_chunk(kind, body) + png[ihdr_end:]


def exif_tiff(orientation, big_endian=False):
    if big_endian:
        return b"MM\x00*" + struct.pack(">IHHHIHH", 8, 1, 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<IHHHIHH", 8, 1, 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"


def insert_jpeg_app1(jpeg, body):
    seg = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + seg + jpeg[2:]


JPEG_HELPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
/* usage: helper OUT W H COMPONENTS(1|3|4) PROGRESSIVE RESTART */
int main(int argc, char** argv) {
  struct jpeg_compress_struct c; struct jpeg_error_mgr e;
  FILE* f = fopen(argv[1], "wb");
  int w = atoi(argv[2]), h = atoi(argv[3]), n = atoi(argv[4]);
  c.err = jpeg_std_error(&e); jpeg_create_compress(&c); jpeg_stdio_dest(&c, f);
  c.image_width = w; c.image_height = h; c.input_components = n;
  c.in_color_space = n == 1 ? JCS_GRAYSCALE : n == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&c); jpeg_set_quality(&c, 75, TRUE);
  if (atoi(argv[5])) jpeg_simple_progression(&c);
  c.restart_interval = atoi(argv[6]);
  jpeg_start_compress(&c, TRUE);
  unsigned char row[4096];
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w * n; ++x) row[x] = (unsigned char)(x * 7 + c.next_scanline * 13);
    JSAMPROW r = row; jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c); jpeg_destroy_compress(&c); fclose(f); return 0;
}
"""


def gif_minimal(transparent=False, interlaced=False, local=False):
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", 4, 3, 0x81, 0, 0))
    out += bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])  # 4-entry global palette
    if transparent:
        out += b"\x21\xf9\x04\x01\x00\x00\x02\x00"
    out += b"\x2c" + struct.pack("<HHHH", 0, 0, 4, 3)
    flags = (0x40 if interlaced else 0) | (0x81 if local else 0)
    out.append(flags)
    if local:
        out += bytes([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120])
    out.append(2)  # LZW minimum code size
    # clear, 12 literal pixels, end of information (3-bit codes), packed LSB first
    codes = [4] + [0, 1, 2, 3] * 3 + [5]
    bits = acc = 0
    data = bytearray()
    size = 3
    nxt = 6
    for i, code in enumerate(codes):
        acc |= code << bits
        bits += size
        while bits >= 8:
            data.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
        if 0 < i < len(codes) - 1 and i > 1:
            nxt += 1
            if nxt == (1 << size) and size < 12:
                size += 1
    if bits:
        data.append(acc & 0xFF)
    out += bytes([len(data)]) + data + b"\x00\x3b"
    return bytes(out)


def images(tmp):
    t = "image_decode_fuzzer"
    src = ["-f", "lavfi", "-i", "testsrc=size=8x6:rate=1", "-frames:v", "1"]
    for name, fmt in [("rgb", "rgb24"), ("rgba", "rgba"), ("grey", "gray"), ("grey_alpha", "ya8"),
                      ("palette", "pal8"), ("rgb16", "rgb48be"), ("grey16", "gray16be"),
                      ("mono", "monob")]:
        write(t, f"png_{name}.png", ffmpeg(src + ["-pix_fmt", fmt], f"{tmp}/{name}.png"))
    png = ffmpeg(src + ["-pix_fmt", "rgb24"], f"{tmp}/base.png")
    write(t, "png_exif6.png", insert_png_chunk(png, b"eXIf", exif_tiff(6)))
    write(t, "png_exif8_be.png", insert_png_chunk(png, b"eXIf", exif_tiff(8, big_endian=True)))
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="3"/></x:xmpmeta>'
    write(t, "png_xmp3.png",
          insert_png_chunk(png, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    write(t, "png_trns.png", insert_png_chunk(
        ffmpeg(src + ["-pix_fmt", "pal8"], f"{tmp}/p.png"), b"tRNS", b"\x00\x80"))

    jpg = ffmpeg(src + ["-pix_fmt", "yuvj420p"], f"{tmp}/a.jpg")
    write(t, "jpeg_420.jpg", jpg)
    write(t, "jpeg_444.jpg", ffmpeg(src + ["-pix_fmt", "yuvj444p"], f"{tmp}/b.jpg"))
    write(t, "jpeg_exif6.jpg", insert_jpeg_app1(jpg, b"Exif\x00\x00" + exif_tiff(6)))
    write(t, "jpeg_exif5_be.jpg", insert_jpeg_app1(jpg, b"Exif\x00\x00" + exif_tiff(5, True)))
    write(t, "jpeg_xmp6.jpg", insert_jpeg_app1(
        jpg, b"http://ns.adobe.com/xap/1.0/\x00<x tiff:Orientation>6</x>"))
    helper = f"{tmp}/jpeg_helper"
    with open(helper + ".c", "w") as f:
        f.write(JPEG_HELPER)
    if subprocess.run(["cc", "-O1", "-o", helper, helper + ".c", "-ljpeg"]).returncode == 0:
        for name, args in [("grey", ["9", "7", "1", "0", "0"]), ("progressive", ["12", "10", "3", "1", "0"]),
                           ("cmyk", ["8", "8", "4", "0", "0"]), ("restart", ["24", "16", "3", "0", "1"])]:
            subprocess.run([helper, f"{tmp}/{name}.jpg"] + args, check=True)
            with open(f"{tmp}/{name}.jpg", "rb") as f:
                write(t, f"jpeg_{name}.jpg", f.read())
    else:
        print("no C compiler with libjpeg: skipping the progressive / CMYK JPEG seeds", file=sys.stderr)

    write(t, "gif_ffmpeg.gif", ffmpeg(src, f"{tmp}/a.gif"))
    write(t, "gif_min.gif", gif_minimal())
    write(t, "gif_transparent_interlaced.gif", gif_minimal(transparent=True, interlaced=True))
    write(t, "gif_local_palette.gif", gif_minimal(local=True))
    write(t, "webp_lossy.webp", ffmpeg(src + ["-c:v", "libwebp"], f"{tmp}/a.webp"))
    write(t, "webp_lossless_alpha.webp",
          ffmpeg(src + ["-c:v", "libwebp", "-lossless", "1", "-pix_fmt", "yuva420p"], f"{tmp}/b.webp"))
    for name, fmt in [("24", "bgr24"), ("32", "bgra"), ("8", "pal8"), ("16", "rgb555le"), ("1", "monob")]:
        write(t, f"bmp_{name}.bmp", ffmpeg(src + ["-pix_fmt", fmt], f"{tmp}/{name}.bmp"))


def videos(tmp):
    t = "video_decode_fuzzer"
    src = ["-f", "lavfi", "-i", "testsrc=size=16x16:rate=4", "-frames:v", "4"]
    for name, args in [
        ("h264.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast"]),
        ("mpeg4.avi", ["-c:v", "mpeg4"]),
        ("mjpeg.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]),
        ("vp8.webm", ["-c:v", "libvpx"]),
        ("vp9.mkv", ["-c:v", "libvpx-vp9", "-deadline", "realtime"]),
        ("rawvideo.nut", ["-c:v", "rawvideo", "-pix_fmt", "rgb24"]),
        ("animated.gif", []),
        ("mpeg4_bframes.mov", ["-c:v", "mpeg4", "-bf", "2"]),
        ("png.mkv", ["-c:v", "png"]),
    ]:
        write(t, name, ffmpeg(src + args, f"{tmp}/{name}"))


def requests():
    t = "request_fuzzer"
    write(t, "text.json", json.dumps({"messages": [{"role": "user", "content": "Hello"}]}))
    write(t, "image_path.json", json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image", "path": "media/fruits.jpg"}, {"type": "text", "text": "Describe."}]}]}))
    write(t, "batch.json", json.dumps({"conversations": [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [
            {"type": "video", "url": "file://media/tree.avi"}, {"type": "text", "text": "What?"}]}],
        [{"role": "user", "content": [{"type": "image", "id": "cat"}]}]],
        "processor": {"do_image_splitting": False, "size": {"longest_edge": 1024},
                      "max_image_size": {"longest_edge": 512}, "image_mode": "keep",
                      "chat_template": "smolvlm",
                      "video": {"fps": 1, "max_frames": 8, "num_frames": 4, "skip_secs": 0.5}},
        "generation": {"max_new_tokens": 16, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
                       "repetition_penalty": 1.1, "seed": 7, "ignore_eos": False,
                       "stop": ["\n", "User:"]}}))
    write(t, "base64.json", json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image", "base64": "data:image/png;base64,iVBORw0KGgo=", "id": "x",
         "mime_type": "image/png"}]}], "generation": {"greedy": True, "stop": "END"}}))


def chat_template():
    t = "chat_template_fuzzer"
    write(t, "two_messages", bytes([2, 4, 0x75, 0x73, 0x65, 0x72, 3, 1, 0, 5]) + b"Hello" +
          bytes([2, 9]) + b"assistant" + bytes([1, 0, 3]) + b"Hi!" + bytes([1]))
    write(t, "image_text", bytes([1, 4]) + b"USER" + bytes([2, 1, 0, 8]) + b"<image>?" + bytes([0]))
    with open(os.path.join(ROOT, "tests/golden/models/tiny-smolvlm2-256m-geometry/chat_template.json")) as f:
        template = json.load(f)["chat_template"]
    write(t, "template_text", bytes([0, 1]) + template.encode())


def tokenizer():
    t = "tokenizer_fuzzer"
    with open(os.path.join(ROOT, "tests/golden/tokenizer_golden.json")) as f:
        entries = json.load(f)["entries"]
    for i, e in enumerate(entries[::10]):
        write(t, f"golden_{i:02d}", e["text"])
    write(t, "special", "<|im_start|>User:<image><fake_token_around_image><global-img>"
                        "<row_1_col_2>\n<end_of_utterance>\nAssistant: 12345 héllo 世界 🙂")
    write(t, "invalid_utf8", b"ab\xff\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82 z\x04\x06")


def safetensors():
    t = "safetensors_fuzzer"

    def st(header, data=b""):
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + data

    write(t, "two_tensors.safetensors", st({
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}, bytes(22)))
    write(t, "all_dtypes.safetensors", st({
        name: {"dtype": name, "shape": [1], "data_offsets": [8 * i, 8 * i + size]}
        for i, (name, size) in enumerate([("BOOL", 1), ("U8", 1), ("I8", 1), ("I16", 2), ("I32", 4),
                                          ("I64", 8), ("F16", 2), ("BF16", 2), ("F32", 4),
                                          ("F64", 8)])}, bytes(80)))
    write(t, "empty_tensor.safetensors", st({"e": {"dtype": "F32", "shape": [0, 5],
                                                   "data_offsets": [0, 0]}}))
    write(t, "scalar.safetensors", st({"s": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}},
                                      bytes(8)))


def tensor_proto():
    t = "tensor_proto_fuzzer"
    write(t, "wire_f32", b"\x01" + tensor(1, [2, 3], bytes(24)))
    write(t, "wire_bool", b"\x01" + tensor(7, [4], b"\x00\x01\x00\x01"))
    write(t, "wire_bad_size", b"\x01" + tensor(4, [2], bytes(9)))
    write(t, "described_bf16", bytes([0, 2, 2, 3, 4]) + bytes(24))
    write(t, "described_huge", bytes([0, 1, 2, 250]) + struct.pack("<Q", 1 << 40) + bytes([1]))


def media_source():
    t = "media_source_fuzzer"
    write(t, "data_url", b"\x00data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nxyz"))
    write(t, "base64", b"\x01" + base64.b64encode(b"hello media"))
    write(t, "file_url_root", b"\x10a.jpg")
    write(t, "file_url_relative", b"\x00file://../a.jpg")
    write(t, "path_relative", b"\x02../a.jpg")
    write(t, "path_symlink_out", b"\x02out/passwd")
    write(t, "http_url", b"\x00https://example.com/cat.jpg")


OPENAI_BODIES = {
    "stream_image": {"model": "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "stream": True,
                     "max_tokens": 64, "stream_options": {"include_usage": True},
                     "messages": [{"role": "user", "content": [
                         {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                         {"type": "text", "text": "What is in this image?"}]}]},
    "sdk_defaults": {"model": "smolvlm", "messages": [
        {"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": "Again"}]}],
        "frequency_penalty": 0, "presence_penalty": 0, "logprobs": False, "top_logprobs": 0,
        "response_format": {"type": "text"}, "user": "u1", "metadata": {"a": "b"},
        "tools": [], "tool_choice": "none"},
    "sampling": {"messages": [{"role": "user", "content": "x"}], "n": 3, "seed": 5,
                 "temperature": 0.8, "top_p": 0.95, "top_k": -1, "repetition_penalty": 1.2,
                 "stop": ["a", "b"], "ignore_eos": True, "return_token_ids": True,
                 "max_completion_tokens": 10},
    "video": {"messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}},
        {"type": "image_url", "image_url": "file:///media/a.png"}]}]},
    "unsupported": {"messages": [{"role": "tool", "content": "x"}], "logprobs": True,
                    "response_format": {"type": "json_object"}},
}


def openai():
    for name, body in OPENAI_BODIES.items():
        write("openai_api_fuzzer", name + ".json", json.dumps(body))


def front_chat():
    t = "front_chat_fuzzer"
    text = f_bytes(1, "Describe.")
    image = f_bytes(2, f_bytes(1, b"\x89PNG\r\n\x1a\n") + f_bytes(4, "image/png") + f_bytes(5, "cat"))
    video = f_bytes(3, f_bytes(3, "file://media/tree.avi"))
    idonly = f_bytes(2, f_bytes(5, "cat"))
    msg = f_bytes(1, "user") + f_bytes(2, image) + f_bytes(2, text)
    conv = f_bytes(1, msg)
    processor = f_varint(1, 1) + f_varint(2, 1024) + f_varint(3, 512) + f_float(4, 1.0) + \
        f_varint(5, 8) + f_varint(6, 4) + f_float(7, 0.0)
    generation = f_varint(1, 16) + f_float(2, 0.7) + f_float(3, 0.9) + f_varint(4, 40) + \
        f_float(5, 1.1) + f_varint(6, 7) + f_varint(7, 1) + f_bytes(8, "User:")
    write(t, "image_text", f_bytes(1, conv) + f_bytes(2, processor) + f_bytes(3, generation) +
          f_bytes(4, "req-1"))
    conv2 = f_bytes(1, f_bytes(1, "system") + f_bytes(2, text)) + \
        f_bytes(1, f_bytes(1, "user") + f_bytes(2, video) + f_bytes(2, idonly))
    write(t, "batch", f_bytes(1, conv) + f_bytes(1, conv2))


def vision():
    t = "vision_encode_fuzzer"
    # described: shape byte (4-D float32 with a mask), count, side 64, pattern
    write(t, "described_one_tile", bytes([0, 0x20, 0, 0, 1]) + bytes([4]) + b"\x00\x00\x80\x3f" +
          bytes([0, 0, 1, 1]) + bytes([1, 1]))
    write(t, "described_two_tiles_bf16", bytes([0, 0x12, 1, 0, 3, 1, 1]) + bytes([2, 0x3f, 0x80]))
    write(t, "described_nan", bytes([0, 0x00, 0, 0, 1, 4]) + struct.pack("<f", float("nan")))
    pixels = struct.pack("<f", 0.5) * (3 * 64 * 64)
    mask = b"\x01" * (64 * 64)
    write(t, "wire_one_tile", b"\x01" + f_bytes(1, tensor(1, [1, 3, 64, 64], pixels)) +
          f_bytes(2, tensor(6, [1, 64, 64], mask)))
    write(t, "wire_bad_size", b"\x01" + f_bytes(1, tensor(1, [1, 3, 64, 64], bytes(100))))


def decoder():
    t = "decoder_generate_fuzzer"
    write(t, "described_text", bytes([0, 6, 20, 1, 2, 30, 3, 4, 40, 5, 6, 50, 7, 8, 60, 9, 10,
                                      70, 11, 12, 0x21, 8, 9, 0, 0, 0, 0, 0, 0, 0, 1, 2, ord("a"),
                                      ord("b")]))
    write(t, "described_image", bytes([0, 3, 1, 20, 5, 6, 30, 7, 8, 0x81, 4, 1, 1, 4]) +
          struct.pack("<f", 0.25))
    gen = f_varint(1, 4) + f_float(2, 0.0) + f_bytes(8, "the")
    write(t, "wire_text", b"\x01" + f_packed(1, [1, 2, 3, 4, 5]) + f_bytes(3, gen) +
          f_bytes(4, "r1"))
    images = tensor(1, [1, 64, 32], struct.pack("<f", 0.1) * (64 * 32))
    write(t, "wire_image", b"\x01" + f_packed(1, [1] + [49190] * 64 + [2]) + f_bytes(2, images) +
          f_bytes(3, f_varint(1, 2)))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    with tempfile.TemporaryDirectory() as tmp:
        images(tmp)
        videos(tmp)
    requests()
    chat_template()
    tokenizer()
    safetensors()
    tensor_proto()
    media_source()
    openai()
    front_chat()
    vision()
    decoder()
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"seeds written to {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
