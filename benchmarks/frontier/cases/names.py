"""Import names that differ from distribution names, and a namespace package."""

from casebook import case

CASES = [
    case(
        "m01_sklearn_metrics",
        ["""
        from sklearn.metrics import f1_score

        def f1(y_true, y_pred):
            return round(float(f1_score(y_true, y_pred)), 6)
        """],
        "f1", [[0, 1, 1, 0], [0, 1, 0, 0]], {"scikit-learn"},
        "sklearn is provided by scikit-learn.",
    ),
    case(
        "m02_pil_image",
        ["""
        from PIL import Image

        def blank_size(w, h):
            return list(Image.new("L", (w, h)).size)
        """],
        "blank_size", [3, 2], {"pillow"},
        "PIL is provided by pillow.",
    ),
    case(
        "m03_pil_imageops",
        ["""
        from PIL import Image, ImageOps

        def mirrored_pixel(w):
            img = Image.new("L", (w, 1))
            img.putpixel((0, 0), 255)
            return ImageOps.mirror(img).getpixel((w - 1, 0))
        """],
        "mirrored_pixel", [4], {"pillow"},
        "PIL.ImageOps, a submodule imported by name: pillow.",
    ),
    case(
        "m04_yaml",
        ["""
        import yaml

        def load(text):
            return yaml.safe_load(text)
        """],
        "load", ["a: 1\nb: [2, 3]\n"], {"pyyaml"},
        "yaml is provided by pyyaml.",
    ),
    case(
        "m05_yaml_function_import",
        ["""
        from yaml import safe_dump as dump

        def show(d):
            return dump(d, sort_keys=True)
        """],
        "show", [{"z": 1, "a": 2}], {"pyyaml"},
        "a yaml function imported under another name: pyyaml.",
    ),
    case(
        "m06_bs4",
        ["""
        from bs4 import BeautifulSoup

        def text_of(html):
            return BeautifulSoup(html, "html.parser").get_text(" ", strip=True)
        """],
        "text_of", ["<p>Hello <b>there</b></p>"], {"beautifulsoup4"},
        "bs4 is provided by beautifulsoup4.",
    ),
    case(
        "m07_bs4_select",
        ["""
        import bs4

        def links(html):
            soup = bs4.BeautifulSoup(html, "html.parser")
            return [a["href"] for a in soup.select("a.ext")]
        """],
        "links", ['<a class="ext" href="/x">x</a><a href="/y">y</a>'], {"beautifulsoup4"},
        "CSS select runs on soupsieve, a dependency of beautifulsoup4.",
    ),
    case(
        "m08_dateutil_parser",
        ["""
        from dateutil import parser

        def iso(text):
            return parser.parse(text).date().isoformat()
        """],
        "iso", ["5 Jan 2022"], {"python-dateutil"},
        "dateutil is provided by python-dateutil.",
    ),
    case(
        "m09_dateutil_relativedelta",
        ["""
        import datetime
        from dateutil.relativedelta import relativedelta

        def add_months(iso, n):
            return (datetime.date.fromisoformat(iso) + relativedelta(months=n)).isoformat()
        """],
        "add_months", ["2024-01-31", 1], {"python-dateutil"},
        "dateutil.relativedelta: python-dateutil.",
    ),
    case(
        "m10_google_namespace",
        ["""
        from google.protobuf import struct_pb2

        def struct_keys(d):
            s = struct_pb2.Struct()
            s.update(d)
            return sorted(s.keys())
        """],
        "struct_keys", [{"b": 1, "a": "x"}], {"protobuf"},
        "google is a namespace package shared by several distributions; google.protobuf is protobuf.",
    ),
    case(
        "m11_charset_normalizer",
        ["""
        import charset_normalizer

        def encoding_of(text):
            return str(charset_normalizer.from_bytes(text.encode("utf-8")).best().encoding)
        """],
        "encoding_of", ["plain ascii text, nothing fancy here"], {"charset-normalizer"},
        "charset_normalizer is provided by charset-normalizer.",
    ),
    case(
        "m12_pil_attribute_chain",
        ["""
        import PIL.Image

        def mode_of(w):
            return PIL.Image.new("RGB", (w, w)).mode
        """],
        "mode_of", [2], {"pillow"},
        "PIL.Image reached as an attribute chain of the global PIL: pillow.",
    ),
]
