#!/usr/bin/env python3
"""The man pages and the bash completion cover what the programs' --help says.

For every PROGRAM:SECTION (LESTASH_PROGRAMS in CMakeLists.txt), read from the
built binary's --help and each subcommand's --help:
  - its man page in BUILD_DIR/man renders without a groff warning, has the
    version --version prints, every global option under OPTIONS, and a
    COMMANDS entry per subcommand holding each of its options and arguments,
    and the sections only the include file gives (EXIT STATUS, FILES, SEE ALSO);
  - its completion (BUILD_DIR/completion), run in bash as bash runs it,
    offers after each subcommand path every subcommand there, every option
    of it and every global option, and an option's choices after it.
sync.toml(5) must render without a warning too; the keys in it are compared
with the parser's own table by the unit test "sync.toml(5) documents every
key the parser accepts".

Usage: cli_docs_test.py SOURCE_DIR BUILD_DIR PROGRAM_PATH:SECTION...
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SOURCE, BUILD = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(SOURCE / "scripts"))
import cli_docs  # noqa: E402

failures: list[str] = []


def fail(message: str) -> None:
    failures.append(message)
    print("FAIL:", message, file=sys.stderr)


def groff_warnings(page: Path) -> str:
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                       capture_output=True, text=True, timeout=30)
    return (r.stderr + ("" if r.returncode == 0 else f"exit {r.returncode}")).strip()


def unroff(text: str) -> str:
    text = re.sub(r"\\f[BIRP]|\\&", "", text)
    return text.replace("\\-", "-").replace("\\e", "\\").replace("\\(em", "—")


def blocks(page: str) -> dict[str, str]:
    """The page's .SH and .SS headings, each with the text below it (unroffed)."""
    out: dict[str, str] = {}
    heading = ""
    for line in page.splitlines():
        if m := re.match(r'\.S[HS] "?(.*?)"?$', line):
            heading = unroff(m.group(1))
            out.setdefault(heading, "")
        else:
            out[heading] = out.get(heading, "") + unroff(line) + "\n"
    return out


def check_man(program: str, section: str, tree: cli_docs.Command) -> None:
    name = tree.path[0]
    page_path = BUILD / "man" / f"{name}.{section}"
    if not page_path.exists():
        return fail(f"{page_path} was not built")
    if w := groff_warnings(page_path):
        fail(f"{page_path} does not render cleanly: {w}")
    page = page_path.read_text()
    version = subprocess.run([program, "--version"], capture_output=True, text=True).stdout.split()
    th = page.split(".TH", 1)[1].split("\n", 1)[0] if ".TH" in page else ""
    if not th or version[-1] not in th or not re.search(rf'\s"?{section}"?\s', th):
        fail(f"{page_path}: the .TH line ({th.strip()}) lacks section {section} or version {version}")
    parts = blocks(page)
    for needed in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "SEE ALSO"):
        if needed not in parts:
            fail(f"{page_path} has no {needed} section")
    for o in tree.options:
        for n in o.names:
            if not re.search(rf"(^|[\s,]){re.escape(n)}\b", parts.get("OPTIONS", "")):
                fail(f"{page_path}: OPTIONS does not list {n} ({name} --help does)")
    for c in tree.walk():
        if c is tree:
            continue
        entry = parts.get(c.usage)
        if entry is None:
            fail(f"{page_path}: COMMANDS has no entry \"{c.usage}\" ({c.name} --help)")
            continue
        if c.description not in " ".join(entry.split()):
            fail(f"{page_path}: the entry of {c.name} lacks its description \"{c.description}\"")
        for o in c.positionals + c.options:
            for n in o.names:
                if n != "-h" and n != "--help" and n not in entry:
                    fail(f"{page_path}: the entry of {c.name} does not list {n}")


def check_completion(tree: cli_docs.Command) -> None:
    name = tree.path[0]
    path = BUILD / "completion" / name
    if not path.exists():
        return fail(f"{path} was not built")
    cases = []  # (words before the cursor, the word at the cursor, what must be offered)
    for c in tree.walk():
        before = c.path[1:]
        words = {n for o in c.all_options(tree) for n in o.names if n.startswith("--")}
        words |= {s.path[-1] for s in c.subcommands}
        cases.append((before, "", words))
        # The global options after a subcommand too, as people type them.
        cases.append((before, "--", {w for w in words if w.startswith("--")}))
        for o in c.options:
            if o.choices:
                cases.append((before + [o.names[-1]], "", set(o.choices)))
    function = "_" + re.sub(r"\W", "_", name)
    script = [f"source {path}"]
    for before, cur, _ in cases:
        words = " ".join(f"'{w}'" for w in [name, *before, cur])
        script.append(f"COMP_WORDS=({words}); COMP_CWORD={len(before) + 1}; COMPREPLY=(); "
                      f"{function} {name}; echo \"${{COMPREPLY[*]}}\"")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(script)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or r.stderr:
        return fail(f"{path} fails in bash: {r.stderr.strip()} (exit {r.returncode})")
    for (before, cur, expected), answer in zip(cases, r.stdout.split("\n")):
        got = set(answer.split())
        if got != expected:
            typed = " ".join([name, *before, cur])
            fail(f"{path}: `{typed}<Tab>` offers {sorted(got)}; --help says {sorted(expected)}"
                 f" (missing {sorted(expected - got)}, not in --help {sorted(got - expected)})")
    print(f"checked {len(cases)} completions of {name}")


def main() -> int:
    for spec in sys.argv[3:]:
        program, section = spec.rsplit(":", 1)
        tree = cli_docs.help_tree(program)
        check_man(program, section, tree)
        check_completion(tree)
        print(f"checked {tree.path[0]}({section}): {sum(1 for _ in tree.walk())} commands")
    config_page = BUILD / "man" / "sync.toml.5"
    if not config_page.exists():
        fail(f"{config_page} was not built")
    elif w := groff_warnings(config_page):
        fail(f"{config_page} does not render cleanly: {w}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
