#!/usr/bin/env python3
"""Checks every relative link in the repository's Markdown: the file it names exists, and so does the heading its
`#fragment` names (GitHub's anchor rules). External links are not fetched (CI has no promise of network)."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")


def markdown_files():
    names = ["README.md", "CHANGELOG.md", "BENCHMARKS.md"]
    files = [ROOT / name for name in names if (ROOT / name).exists()]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted(ROOT.glob("idempotent-*/README.md"))
    return files


def anchors(path, cache={}):
    if path not in cache:
        text = FENCE.sub("", path.read_text(encoding="utf-8"))
        seen, found = {}, set()
        for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.MULTILINE):
            heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
            slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(re.findall(r'<a (?:name|id)="([^"]+)"', text))
        cache[path] = found
    return cache[path]


def main():
    broken = []
    for source in markdown_files():
        text = CODE.sub("", FENCE.sub("", source.read_text(encoding="utf-8")))
        for match in LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue
            file_part, _, fragment = target.partition("#")
            path = (source.parent / file_part).resolve() if file_part else source
            where = f"{source.relative_to(ROOT)}: ({target})"
            if not path.exists():
                broken.append(f"{where}: no such file")
            elif fragment and path.suffix == ".md" and fragment not in anchors(path):
                broken.append(f"{where}: no heading #{fragment} in {path.relative_to(ROOT)}")
    for line in broken:
        print(line)
    print(f"links: {len(broken)} broken in {len(markdown_files())} Markdown files")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
