"""Job logs: followed through the client library (followLog) on each transport, from any line,
and shown as printed: a traceback on stderr keeps its indentation, with nothing added before a
line and no gap between lines, and the runner's note of a failed exit reads as an error."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ServerFactory
from tests.browser.console_helpers import TIMEOUT_MS, TRANSPORTS, api_get, api_post, screenshot, url_of, wait_live

FOLLOW = """async ({ jobId, transport, after }) => {
    const { followLog } = await import("/static/collector-hub-client.js");
    return await new Promise((resolve, reject) => {
        const lines = [];
        const transports = new Set();
        followLog(jobId, {
            onUpdate: (batch, meta) => { lines.push(...batch.map((l) => l.line)); transports.add(meta.transport); },
            onComplete: (end) => resolve({ lines, end, transports: [...transports] }),
            onError: (err) => reject(new Error(`${err.status}: ${err.message}`)),
        }, { transports: [transport], after, pollInterval: 300, maxPollInterval: 600 });
    });
}"""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_client_library_follows_a_log_on_each_transport(
    live_server: ServerFactory, page: Any, transport: str
) -> None:
    server = await live_server()
    created = await api_post(server, "/api/collectors/run", {"collectors": ["chatty"]})
    job_id = created["collectors"][0]["job_id"]
    await page.goto(url_of(server))
    # From the start while the job runs: every line once, in order, then the end.
    live = await page.evaluate(FOLLOW, {"jobId": job_id, "transport": transport, "after": 0})
    stored = (await api_get(server, f"/api/collectors/runs/job/{job_id}/logs"))["lines"]
    assert live["lines"] == [line["line"] for line in stored]
    assert len(stored) >= 121
    assert live["end"] == {"job_id": job_id, "status": "completed"}
    assert live["transports"] == [transport]
    # Resumed after a line, and after the last one, of the ended job.
    resumed = await page.evaluate(FOLLOW, {"jobId": job_id, "transport": transport, "after": 100})
    assert resumed["lines"] == [line["line"] for line in stored if line["line"] > 100]
    assert resumed["end"]["status"] == "completed"
    last = stored[-1]["line"]
    nothing = await page.evaluate(FOLLOW, {"jobId": job_id, "transport": transport, "after": last})
    assert nothing["lines"] == []
    assert nothing["end"]["status"] == "completed"


async def test_the_run_view_follows_a_log_over_the_consoles_websocket(live_server: ServerFactory, page: Any) -> None:
    server = await live_server()
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    created = await api_post(server, "/api/collectors/run", {"collectors": ["chatty"]})
    job_id = created["collectors"][0]["job_id"]
    await page.goto(url_of(server, f"/runs/{created['batch_id']}"))
    await wait_live(page, "websocket")
    panel = page.locator(f'.log-panel[data-job-id="{job_id}"]')
    await panel.locator('.line[data-line="40"]').wait_for(timeout=TIMEOUT_MS)
    assert any('"logs"' in frame and job_id in frame for frame in sent), sent


TRACEBACK_PROGRAM = """\
import sys
print("starting", flush=True)
try:
    {}["missing"]
except KeyError:
    import traceback
    traceback.print_exc()
sys.exit(3)
"""

# Per line of the log: its text, the CSS before it, its colour, its top, and the left edge of
# its first printed character (after the indentation), from the rendered page.
RENDERED = """log => [...log.querySelectorAll('.line')].map(el => {
    const text = el.textContent;
    const indent = text.length - text.replace(/^ +/, "").length;
    const node = el.firstChild;
    const range = document.createRange();
    range.setStart(node, indent);
    range.setEnd(node, indent + 1);
    const first = range.getBoundingClientRect();
    range.selectNodeContents(el);
    const boxes = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
    range.setStart(node, 0);
    range.setEnd(node, 1);
    return {
        boxes,
        text, indent, kind: el.className,
        before: getComputedStyle(el, '::before').content,
        color: getComputedStyle(el).color,
        top: range.getBoundingClientRect().top,
        left: first.left,
        charWidth: first.width,
    };
})"""


async def test_a_traceback_is_shown_as_printed_and_a_failed_exit_as_an_error(
    live_server: ServerFactory, page: Any, tmp_path: Path, screenshot_dir: Path
) -> None:
    program = tmp_path / "traceback_exit3.py"
    program.write_text(TRACEBACK_PROGRAM)
    collectors = tmp_path / "collectors.toml"
    collectors.write_text(f'[collectors.crash]\ncommand = ["{sys.executable}", "{program}"]\n')
    server = await live_server(collectors_file=collectors)
    created = await api_post(server, "/api/collectors/run", {"collectors": ["crash"]})
    job_id = created["collectors"][0]["job_id"]
    await page.set_viewport_size({"width": 1280, "height": 900})  # wide: no line wraps
    await page.goto(url_of(server, f"/runs/{created['batch_id']}"))
    await page.wait_for_selector('main[data-status="failed"]', timeout=TIMEOUT_MS)
    panel = page.locator(f'.log-panel[data-job-id="{job_id}"]')
    await panel.evaluate("el => { el.open = true; }")
    await panel.locator(".line").filter(has_text="exited with code 3").wait_for(timeout=TIMEOUT_MS)
    stored = (await api_get(server, f"/api/collectors/runs/job/{job_id}/logs"))["lines"]
    await screenshot(page, screenshot_dir, "console-log-traceback-1280")
    lines = await panel.locator(".log").evaluate(RENDERED)
    # Every line as printed, each once, with its newline: the log reads as the program wrote it.
    assert [line["text"] for line in lines] == [f"{line['text']}\n" for line in stored]
    assert await panel.locator(".log").text_content() == "".join(f"{line['text']}\n" for line in stored)
    assert [line["before"] for line in lines if line["before"] not in ("none", "normal")] == []
    # No gap: each line starts right below the one before (one line-height per line box; a
    # runner note naming a long command may wrap).
    height = await panel.locator(".log").evaluate("el => parseFloat(getComputedStyle(el).lineHeight)")
    gaps = [(b["top"] - a["top"]) / a["boxes"] for a, b in itertools.pairwise(lines)]
    assert all(abs(gap - height) < 0.5 for gap in gaps), (height, gaps)
    assert all(line["boxes"] == 1 for line in lines if line["text"].startswith(("Traceback", " ")))
    # Indentation kept: each line's first character is `indent` characters in.
    printed = [line for line in lines if line["text"].strip()]
    left = min(line["left"] for line in printed)
    width = printed[0]["charWidth"]
    for line in printed:
        assert abs(line["left"] - left - line["indent"] * width) < 1, line
    assert any(line["indent"] == 4 for line in lines)  # the traceback's code line
    by_text = {line["text"].strip(): line for line in lines}
    stderr_color = by_text["Traceback (most recent call last):"]["color"]
    exit_note = next(line for line in lines if "exited with code 3" in line["text"])
    assert "error" in exit_note["kind"].split()
    assert exit_note["color"] == stderr_color != by_text["starting"]["color"]
