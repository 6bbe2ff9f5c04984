"""Check every relative link in README.md and docs/*.md: the file exists and, for a markdown
file, the #anchor is one of its headings (GitHub slugs). Usage: python docs/check_links.py"""
import re, sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
FENCE = re.compile(r"^\s*(```|~~~)")

def strip_code(text):
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return out

def slug(heading):
    h = heading.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)   # drop punctuation (keeps letters, digits, _, -, space)
    return h.replace(" ", "-")

def anchors(path):
    seen, result = {}, set()
    for line in strip_code(path.read_text()):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            result.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return result

LINK = re.compile(r"\]\(([^)\s]+)\)")
pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
errors, count = [], 0
for page in pages:
    lines = strip_code(page.read_text())
    for no, line in enumerate(lines, 1):
        line = re.sub(r"`[^`]*`", "", line)   # inline code
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                continue
            count += 1
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                errors.append(f"{page.relative_to(ROOT)}:{no}: {target}: no such file")
                continue
            if anchor and dest.suffix == ".md":
                if anchor not in anchors(dest):
                    errors.append(f"{page.relative_to(ROOT)}:{no}: {target}: no anchor #{anchor} in {dest.relative_to(ROOT)}")
print(f"{count} relative links in {len(pages)} pages; {len(errors)} broken")
print("\n".join(errors))
sys.exit(1 if errors else 0)
