"""Build the bundled sample at ``imagenet_think/sample/`` (Hub layout, 24 rows, < 2 MB).

Rows go to ``data/train-*.parquet`` or ``data/validation-*.parquet`` by the hash of their id
(:mod:`imagenet_think.split`, the default fraction 0.01), so the sample's splits are those the
loader computes and the evaluation subset never meets ``train``.

Images are drawn here with Pillow (simple shapes suggesting each class), so they are free to
redistribute (CC0).  Texts are hand-written fixtures in the teachers' raw output formats,
not model output; several rows carry the edge cases a parser meets in real outputs.

    python builder_scripts/make_sample.py [--out imagenet_think/sample]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from imagenet_think import PROMPT, schema
from imagenet_think.labels import label_for
from imagenet_think.reasoning import split_reasoning
from imagenet_think.split import DEFAULT_VALIDATION_FRACTION
from imagenet_think.writer import write_card, write_split_shards

# wnid, short name, colour name, RGB, shape, scene
CLASSES = [
    ("n07753592", "banana", "yellow", (235, 200, 40), "crescent", "on a wooden kitchen table"),
    ("n07747607", "orange", "orange", (245, 140, 20), "circle", "in a fruit bowl"),
    ("n04254680", "soccer ball", "white and black", (240, 240, 240), "ball", "on green grass"),
    ("n02690373", "airliner", "silver", (190, 195, 205), "plane", "against a blue sky"),
    ("n09472597", "volcano", "dark grey", (90, 80, 75), "cone", "under an orange sky"),
    ("n07734744", "mushroom", "red and white", (200, 40, 40), "cap", "on a forest floor"),
    ("n04285008", "sports car", "red", (210, 30, 30), "car", "on an asphalt road"),
    ("n03792782", "mountain bike", "blue", (40, 80, 200), "bike", "on a dirt trail"),
    ("n02799071", "baseball", "white", (245, 245, 235), "ball", "on a dirt infield"),
    ("n09246464", "cliff", "brown", (150, 110, 70), "cliff", "above the sea"),
    ("n04037443", "racer", "green", (30, 160, 60), "car", "on a race track"),
    ("n03417042", "garbage truck", "green", (40, 120, 50), "truck", "on a city street"),
]

BACKGROUNDS = {
    "wooden kitchen table": (150, 100, 60), "fruit bowl": (230, 220, 200), "green grass": (60, 150, 60),
    "blue sky": (120, 170, 235), "orange sky": (240, 150, 90), "forest floor": (80, 60, 40),
    "asphalt road": (70, 70, 75), "dirt trail": (140, 110, 80), "dirt infield": (170, 120, 80),
    "sea": (40, 90, 160), "race track": (90, 90, 95), "city street": (120, 120, 125),
}


def draw(shape: str, rgb: tuple, scene: str, seed: int) -> bytes:
    """A 256x256 JPEG suggesting ``shape`` in ``scene`` colours."""
    rng = random.Random(seed)
    background = next(v for k, v in BACKGROUNDS.items() if k in scene)
    img = Image.new("RGB", (256, 256), background)
    d = ImageDraw.Draw(img)
    for _ in range(40):  # texture
        x, y = rng.randrange(256), rng.randrange(256)
        shade = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in background)
        d.ellipse((x, y, x + rng.randint(3, 12), y + rng.randint(3, 12)), fill=shade)
    cx, cy = 128 + rng.randint(-20, 20), 128 + rng.randint(-20, 20)
    if shape == "crescent":
        d.pieslice((cx - 80, cy - 60, cx + 80, cy + 100), 200, 340, fill=rgb)
        d.pieslice((cx - 70, cy - 40, cx + 70, cy + 100), 200, 340, fill=background)
    elif shape in ("circle", "ball"):
        d.ellipse((cx - 60, cy - 60, cx + 60, cy + 60), fill=rgb, outline=(20, 20, 20), width=3)
        if shape == "ball":
            d.regular_polygon((cx, cy, 18), 5, fill=(20, 20, 20))
    elif shape == "plane":
        d.polygon([(cx - 90, cy), (cx + 90, cy - 10), (cx + 90, cy + 10)], fill=rgb)
        d.polygon([(cx - 10, cy), (cx + 30, cy - 60), (cx + 40, cy)], fill=rgb)
    elif shape in ("cone", "cliff"):
        d.polygon([(cx - 110, 256), (cx - 20, cy - 60), (cx + 20, cy - 60), (cx + 110, 256)], fill=rgb)
    elif shape == "cap":
        d.rectangle((cx - 12, cy, cx + 12, cy + 70), fill=(235, 230, 215))
        d.pieslice((cx - 60, cy - 50, cx + 60, cy + 40), 180, 360, fill=rgb)
        for _ in range(6):
            x, y = cx + rng.randint(-40, 40), cy + rng.randint(-35, -10)
            d.ellipse((x - 5, y - 5, x + 5, y + 5), fill=(250, 250, 250))
    else:  # vehicles
        d.rectangle((cx - 90, cy - 25, cx + 90, cy + 25), fill=rgb)
        d.ellipse((cx - 70, cy + 10, cx - 30, cy + 50), fill=(20, 20, 20))
        d.ellipse((cx + 30, cy + 10, cx + 70, cy + 50), fill=(20, 20, 20))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=70, optimize=True)
    return out.getvalue()


def glm_text(name: str, colour: str, shape: str, scene: str, k: int) -> str:
    think = (
        f"Got it, let's analyze this image step by step. First, the main object: a {colour} {shape}-shaped "
        f"object in the centre. The setting looks like it is {scene}. The shape and colour are typical of a {name}. "
        f"Let me check the details again: the edges, the texture around it, the lighting. Yes, a {name}."
    )
    answer = (
        f"The image shows a **{name}** {scene}.\n\n1. **Main subject**: a {colour} {name} in the centre.\n"
        f"2. **Setting**: {scene}, with a textured background.\n3. **Composition**: the subject fills the middle of "
        f"the frame.\n\nIn summary: <|begin_of_box|>a {name} {scene}<|end_of_box|>"
    )
    closing = "</answer>" if k % 2 else ""  # vLLM drops </answer> as a stop string
    return f"<think>\n{think}</think><answer>{answer}{closing}"


def kimi_text(name: str, colour: str, shape: str, scene: str) -> str:
    think = (
        f"Let me look at the picture. There is a {colour} object with a {shape} outline. Around it the "
        f"background suggests it is {scene}. Which class fits? The colour {colour} and that outline point to a "
        f"{name}. I should describe the object, the setting and the colours."
    )
    answer = (
        f"This image shows a {name} {scene}.\n\n- Object: {name}, {colour}\n- Background: {scene}\n"
        f"- Style: a simple, flat illustration with soft texture."
    )
    return f"◁think▷{think}◁/think▷{answer}"


# row index -> (raw GLM, finish GLM, raw Kimi, finish Kimi) replacing the regular texts
def edge_cases(name: str) -> dict[int, tuple]:
    return {
        2: ("<think>\nThe object is round and... let me count the edges again, the edges again, the edges", "length", None, None),
        5: (None, None, "◁think▷The cap is red with white dots, so maybe a fly agaric, but I need to check the stem and then", "length"),
        7: (f"The rider is missing; the frame is blue.</think><answer>A blue {name} on a dirt trail.</answer>", "stop", None, None),
        9: (None, None, f"◁think▷A cliff.◁/think▷◁think▷No, a rock face.◁/think▷A {name} above the sea.", "stop"),
        11: ("<think>\nA green truck with a bin lifter.</think><answer></answer>", "stop", None, None),
        13: (None, None, f"◁think▷图像中有一个橙色的圆形物体。◁/think▷这张图片展示了一个{name}，放在果盘里。", "stop"),
        16: ("A red car on a road, seen from the side.", "stop", None, None),
    }


def build_rows() -> list[dict]:
    rows = []
    for k in range(24):
        wnid, name, colour, rgb, shape, scene = CLASSES[k % len(CLASSES)]
        file_name = f"{wnid}_{wnid}_{1000 + k}.JPEG"
        raw = [glm_text(name, colour, shape, scene, k), kimi_text(name, colour, shape, scene)]
        finish = ["stop", "stop"]
        glm_edge, glm_finish, kimi_edge, kimi_finish = edge_cases(name).get(k, (None, None, None, None))
        if glm_edge is not None:
            raw[0], finish[0] = glm_edge, glm_finish
        if kimi_edge is not None:
            raw[1], finish[1] = kimi_edge, kimi_finish
        row = {
            "id": schema.record_id(wnid, file_name),
            "wnid": wnid,
            "label": label_for(wnid),
            "image": {"bytes": draw(shape, rgb, scene, seed=k), "path": file_name},
            "question": PROMPT,
            "generation": [],
        }
        for pair, style in ((1, "glm"), (2, "kimi")):
            text = raw[pair - 1]
            split = split_reasoning(text, style, finish_reason=finish[pair - 1])
            row.update(
                {
                    f"model_{pair}": schema.TEACHERS[pair],
                    f"think_{pair}": split.think,
                    f"answer_{pair}": split.answer,
                    f"status_{pair}": split.status,
                    f"finish_reason_{pair}": finish[pair - 1],
                    f"num_tokens_{pair}": None,
                }
            )
            row["generation"].append(
                {
                    "pair": pair,
                    "engine": "hand-written fixture",
                    "revision": "",
                    "sampling": json.dumps({}),
                    "raw": text,
                }
            )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "imagenet_think" / "sample"))
    args = parser.parse_args()
    out = Path(args.out)
    if (out / "data").exists():
        shutil.rmtree(out / "data")
    table = pa.Table.from_pylist(build_rows(), schema=schema.arrow_schema("default"))
    written = write_split_shards(table, out / "data", validation_fraction=DEFAULT_VALIDATION_FRACTION)
    write_card(
        out,
        pretty_name="ImageNet-Think sample (fixtures)",
        source="builder_scripts/make_sample.py",
        validation_fraction=DEFAULT_VALIDATION_FRACTION,
        note=(
            "This is a test sample, not the corpus. Its images are drawn by "
            "`builder_scripts/make_sample.py` with Pillow (simple shapes, released CC0) and its think/answer "
            "texts are **hand-written fixtures in the teachers' raw output formats, not model output**. "
            "The rows whose ids end in `_1002`, `_1005`, `_1007`, `_1009`, `_1011`, `_1013` and `_1016` are edge "
            "cases: truncated (unclosed) thinking, a missing opening `<think>`, two think blocks, an empty answer, "
            "Chinese text, and an output with no reasoning. "
            "The ImageNet ids and labels are real WordNet synsets; the pictures are not ImageNet photos."
        ),
    )
    counts = ", ".join(f"{path.name}: {pq.read_metadata(path).num_rows} rows" for path in written)
    print(f"wrote {out} ({counts})")


if __name__ == "__main__":
    main()
