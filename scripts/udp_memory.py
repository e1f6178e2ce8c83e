"""Resident memory of a process that only receives and demuxes an MPEG-TS stream over loopback UDP.

    python scripts/udp_memory.py --probe-bytes 67108864 --fifo-packets 1000000 --minutes 4
    python scripts/udp_memory.py --minutes 4          # the live source's settings

The clip (default: the open-field mouse) is streamed in a loop at its own rate (``-re -c copy``) by
the ffmpeg that imageio-ffmpeg ships; this process opens it with PyAV as ``fomm_kp.live`` does
(``analyzeduration`` 30 s, the given ``probesize`` and UDP ``fifo_size``) and demuxes the packets
without decoding them, sampling its resident set size every 30 s. It isolates what ffmpeg itself
holds: MPEG-TS keeps ``probesize`` bytes of the stream for seeking back, and the UDP reader's ring
holds ``fifo_size`` packets of 188 bytes; both are taken on page by page as the stream first fills
them, so memory rises with the stream's bit rate until they are full. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path

import av
import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "dlc-openfield" / "videos" / "m3v1mp4.mp4"


def main() -> None:
    from benchmark_live import free_udp_port, rss_mb  # this folder's live benchmark (run as a script)

    from fomm_kp.live.sources import PROBE_BYTES, UDP_FIFO_PACKETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=CLIP)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--probe-bytes", type=int, default=PROBE_BYTES)
    parser.add_argument("--fifo-packets", type=int, default=UDP_FIFO_PACKETS)
    args = parser.parse_args()
    seconds = args.minutes * 60.0
    port = free_udp_port()
    sender: dict = {}

    def send() -> None:
        sender["process"] = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(args.video), "-t", f"{seconds + 5:.0f}", "-c", "copy", "-an", "-f", "mpegts",
             f"udp://127.0.0.1:{port}?pkt_size=1316"])

    threading.Timer(1.0, send).start()
    url = f"udp://127.0.0.1:{port}?fifo_size={args.fifo_packets}&overrun_nonfatal=1&buffer_size=8388608"
    container = av.open(url, options={"analyzeduration": "30000000", "probesize": str(args.probe_bytes)},
                        timeout=(30.0, 5.0))
    stream = container.streams.video[0]
    started, received, samples = time.monotonic(), 0, []
    try:
        for packet in container.demux(stream):
            received += packet.size
            elapsed = time.monotonic() - started
            if elapsed >= 30.0 * (len(samples) + 1):
                samples.append([round(elapsed), round(received / 2**20, 2), round(rss_mb(), 1)])
            if elapsed >= seconds:
                break
    finally:
        container.close()
        if "process" in sender:
            sender["process"].kill()
    print(json.dumps({"video": str(args.video), "probe_bytes": args.probe_bytes, "fifo_packets": args.fifo_packets,
                      "minutes": args.minutes, "samples": "[seconds, MiB of packets received, resident MB]",
                      "memory": samples, "date": time.strftime("%Y-%m-%d %H:%M")}))


if __name__ == "__main__":
    main()
