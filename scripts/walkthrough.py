#!/usr/bin/python3
"""Runs the ```sh blocks of one section of a Markdown document, in order, in one bash.

    scripts/walkthrough.py DOC [--section TITLE] [--print-script]

The section is the `## TITLE` heading (default: "Standing up a fleet: a walk-through") up to
the next heading of level 1 or 2; its ### steps are part of it. Only fenced blocks whose info
string is exactly `sh` run; other blocks (output shown in the prose, ```yaml, indented text)
are for the reader. The blocks run in one `bash` process with `set -euo pipefail`, so a
variable, function or background job of one block is there for the next, as in a terminal
into which they are pasted one after the other.

Before each block it prints a header naming the block and where it is in DOC, then the
block's text as a terminal would show it: `$ ` before the first line of each command, `> `
before the lines that continue it (after a backslash, inside a loop, a function or a
here-document), comments as they are. After each block that finished it prints
`walkthrough: block I of N done`. It exits with bash's status.

Cleanup: the section's last block must start with the line `# cleanup` (more text may
follow on that line). It runs last like the others when everything before it succeeded, and
it also runs, from bash's EXIT trap, when an earlier block failed or bash was interrupted,
with `set +e` (so that it stops everything it can); the exit status is then the failure's.
It must therefore cope with a walk-through that stopped anywhere: stop what has a pid file,
skip what has none.

--print-script prints the bash script it would run, and runs nothing.
"""
import argparse
import re
import shlex
import signal
import subprocess
import sys
import tempfile

DEFAULT_SECTION = "Standing up a fleet: a walk-through"


class Block:
    def __init__(self, line, text):
        self.line = line  # 1-based line of DOC where the block's first command is
        self.text = text


def sh_blocks(doc_text, section):
    """The ```sh blocks of the section, in order."""
    lines = doc_text.split("\n")
    start = None
    for i, l in enumerate(lines):
        if re.fullmatch(r"##\s+" + re.escape(section) + r"\s*", l):
            start = i + 1
            break
    if start is None:
        raise SystemExit("walkthrough: no section '## %s'" % section)
    blocks, i = [], start
    while i < len(lines):
        l = lines[i]
        if re.match(r"#{1,2}\s", l):
            break  # the next section of level 1 or 2
        fence = re.match(r"(`{3,}|~{3,})\s*(\S*)\s*$", l)
        if fence:
            close, body, j = fence.group(1), [], i + 1
            while j < len(lines) and not lines[j].startswith(close):
                body.append(lines[j])
                j += 1
            if j == len(lines):
                raise SystemExit("walkthrough: unclosed code block at line %d" % (i + 1))
            if fence.group(2) == "sh":
                blocks.append(Block(i + 2, "\n".join(body) + "\n"))
            i = j + 1
            continue
        i += 1
    if not blocks:
        raise SystemExit("walkthrough: no ```sh blocks in '## %s'" % section)
    if not blocks[-1].text.startswith("# cleanup"):
        raise SystemExit("walkthrough: the last ```sh block of '## %s' (line %d) must start "
                         "with '# cleanup'" % (section, blocks[-1].line))
    return blocks


def complete(text):
    """True if `text` is whole commands for bash (no open quote, loop, brace or if)."""
    p = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    return p.returncode == 0 or not ("unexpected end of file" in p.stderr
                                     or "unexpected EOF" in p.stderr)


HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


def shown(text):
    """The block as a terminal shows it: `$ ` for a new command, `> ` for its continuation."""
    out, pending, heredocs = [], "", []
    for line in text.rstrip("\n").split("\n"):
        if heredocs:  # a here-document's body, up to its delimiter
            out.append("> " + line)
            if line.strip() == heredocs[0]:
                heredocs.pop(0)
            pending += line + "\n"
            if not heredocs and not line.endswith("\\") and complete(pending):
                pending = ""
            continue
        if not pending and (line.startswith("#") or not line.strip()):
            out.append(line)
            continue
        out.append(("> " if pending else "$ ") + line)
        pending += line + "\n"
        heredocs += [m.group(2) for m in HEREDOC.finditer(line)]
        if not heredocs and not line.endswith("\\") and complete(pending):
            pending = ""
    return "\n".join(out) + "\n"


def quoted_heredoc(text, tag):
    """`cat` of `text`, verbatim, as a here-document with a delimiter not in the text."""
    n = 0
    while "%s%d" % (tag, n) in text:
        n += 1
    return "cat <<'%s%d'\n%s%s%d\n" % (tag, n, text, tag, n)


def script(doc, blocks):
    """The bash script: each block shown, then run; the cleanup block from the EXIT trap too."""
    n = len(blocks)
    cleanup = blocks[-1]
    parts = [
        "set -euo pipefail\n",
        "__wt_block=0 __wt_cleanup_started=0\n",
        # A failed block, or a signal: the cleanup block runs anyway, shown like the others.
        "__wt_exit() {\n  local rc=$?\n"
        "  trap - EXIT INT TERM\n"
        "  if [ \"$__wt_cleanup_started\" = 0 ]; then\n"
        "    __wt_cleanup_started=1\n"
        "    echo\n"
        "    echo \"walkthrough: block $__wt_block of %d failed (exit $rc);\" %s\n"
        % (n, shlex.quote("running the cleanup block (%s line %d)" % (doc, cleanup.line))),
        "    set +e +u +o pipefail\n",
        quoted_heredoc(shown(cleanup.text), "__WT_SHOWN_"),
        "    __wt_cleanup\n",
        "  fi\n  exit $rc\n}\n",
        "__wt_cleanup() {\n" + cleanup.text + ":\n}\n",
        "trap __wt_exit EXIT\n",
        "trap 'exit 130' INT\ntrap 'exit 143' TERM\n",
    ]
    for i, b in enumerate(blocks, 1):
        parts.append("__wt_block=%d\n" % i)
        parts.append("echo\necho %s\n" % shlex.quote("walkthrough: block %d of %d (%s line %d)"
                                                     % (i, n, doc, b.line)))
        parts.append(quoted_heredoc(shown(b.text), "__WT_SHOWN_"))
        if b is cleanup:
            parts.append("__wt_cleanup_started=1\n__wt_cleanup\n")
        else:
            parts.append(b.text)
        parts.append("echo 'walkthrough: block %d of %d done'\n" % (i, n))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("doc")
    ap.add_argument("--section", default=DEFAULT_SECTION)
    ap.add_argument("--print-script", action="store_true")
    args = ap.parse_args()
    with open(args.doc) as f:
        blocks = sh_blocks(f.read(), args.section)
    text = script(args.doc, blocks)
    if args.print_script:
        sys.stdout.write(text)
        return 0
    print("walkthrough: %d ```sh blocks of '## %s' in %s, in one bash (set -euo pipefail)"
          % (len(blocks), args.section, args.doc), flush=True)
    with tempfile.NamedTemporaryFile("w", prefix="walkthrough-", suffix=".sh") as f:
        f.write(text)
        f.flush()
        p = subprocess.Popen(["bash", f.name])
        # A SIGTERM for this process goes to bash, whose trap runs the cleanup block.
        signal.signal(signal.SIGTERM, lambda *_: p.send_signal(signal.SIGTERM))
        try:
            return p.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to bash as well; its trap runs the cleanup block.
            return p.wait()


if __name__ == "__main__":
    sys.exit(main())
