"""A small picture of a text's opening lines: how a written piece shows in the gallery grid."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

CARD_SIDE = 320
MARGIN = 18
LINE_CHARS = 34


def text_card(title: str, body: str, side: int = CARD_SIDE) -> Image.Image:
    """A paper-coloured tile: a bold-ish title line, then as much of `body` as fits, wrapped."""
    card = Image.new("RGB", (side, side), (250, 247, 240))
    draw = ImageDraw.Draw(card)
    title_font = ImageFont.load_default(size=17)
    body_font = ImageFont.load_default(size=14)
    draw.text((MARGIN, MARGIN), title[:LINE_CHARS], font=title_font, fill=(90, 70, 40))
    y = MARGIN + 30
    lines: list[str] = []
    for paragraph in body.strip().splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, LINE_CHARS) or [""])
    for line in lines:
        if y > side - MARGIN - 16:
            draw.text((MARGIN, y), "…", font=body_font, fill=(60, 60, 70))
            break
        draw.text((MARGIN, y), line, font=body_font, fill=(40, 40, 48))
        y += 19
    return card
