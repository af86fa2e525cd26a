"""`fetalplanes run`: the live loop's command line (arguments -> RunConfig overrides). Imports light."""

from __future__ import annotations

import argparse
import sys

from edge.cli import add_command
from edge.cli_args import add_model, add_providers, add_quiet, add_roi, add_threads, setup_logging
from edge.errors import EXIT_FAILURE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "run",
        "Label the scanner's video live: capture -> sector -> model -> smoothing -> overlay/outputs.",
        _run,
        "fetalplanes run --model model.int8.onnx --input v4l2:///dev/video0 --output display://0 "
        "--output jsonl://predictions.jsonl --status status.json",
        description=(
            "Label every frame of a scanner's video output with its standard plane.\n\n"
            "inputs:  v4l2:///dev/video0 | 0 | clip.mp4 | file://clip.avi | rtsp://host/s | 'v4l2src ! ... ! appsink'\n"
            "         | folder/ | 'imgs/*.png'\n"
            "outputs: display://0 | out.mp4 | out.avi?codec=MJPG | jsonl://predictions.jsonl | http://127.0.0.1:8080/\n"
            "         (several allowed)\n"
            "settings come from --config FILE (TOML/YAML); flags given here override it."
        ),
    )
    p.add_argument("--config", metavar="FILE", help="box settings (TOML, or YAML with PyYAML); flags override it")
    add_model(p, help="model file (.onnx, or a TensorRT engine on a TensorRT box); default: the vendored SonoNet-16 "
                      "(edge/models/sononet16.onnx, published weights, trained on another cohort)")
    p.add_argument("--input", "-i", help="source URI (see above)")
    p.add_argument("--output", "-o", action="append", metavar="URI", help="output URI; repeat for several (replaces the config file's list)")
    add_roi(p, default_text="detect the image sector in every frame")
    p.add_argument("--status", metavar="FILE", help="heartbeat JSON written atomically about once a second")
    g = p.add_argument_group("input")
    g.add_argument("--width", type=int, help="capture width (live sources)")
    g.add_argument("--height", type=int, help="capture height (live sources)")
    g.add_argument("--fps", type=float, help="capture rate (live), pacing rate of image folders")
    g.add_argument("--fourcc", help="V4L2 pixel format to request, e.g. MJPG")
    g.add_argument("--loop", action="store_const", const=True, help="files/folders: start again at the end")
    g.add_argument("--pace", help="files: off (every frame, as fast as possible; default), realtime (the file's fps, newest frame only), or a rate")
    g.add_argument("--reconnect-tries", type=int, help="live: give up after this many failed reconnects in a row (0 = never)")
    g = p.add_argument_group("labels")
    g.add_argument("--uncertain-below", type=float, help="confidence under which the label is shown as uncertain")
    g.add_argument("--ema", type=float, dest="ema_alpha", help="weight of the newest frame in the smoothing (1 = none)")
    g.add_argument("--hold-frames", type=int, help="frames a new label must lead before it is shown")
    g.add_argument("--freeze-frames", type=int, help="unchanged frames that make a frozen (stored) image")
    g = p.add_argument_group("outputs")
    g.add_argument("--mask-header", type=float, metavar="ROWS|FRACTION", help="black out the top band (patient name/ID) in frame outputs")
    g.add_argument("--no-top3", action="store_const", const=False, dest="top3", help="no top-3 bars in the overlay")
    g.add_argument("--codec", help="FourCC for video outputs (default by container: mp4v for .mp4, MJPG for .avi)")
    g.add_argument("--rotate-mb", type=float, help="start a new jsonl/video file past this size (MB)")
    g.add_argument("--keep-mb", type=float, help="delete the oldest files beyond this total (MB, per output)")
    g.add_argument("--keep-files", type=int, help="keep at most this many old files per output")
    g = p.add_argument_group("exam")  # exam-hook (issue 14)
    g.add_argument("--exam-report", metavar="DIR", help="at the end of each exam write DIR/<exam>/index.html, the best frame "
                   "of each plane and exam.json (header band masked as in recordings); nothing is written without it")
    g.add_argument("--exam-id", metavar="ID", help="name of the first exam (default exam-<date>-<time>)")
    g.add_argument("--no-checklist", action="store_const", const=False, dest="checklist", help="no exam checklist in the overlay")
    g = p.add_argument_group("run")
    g.add_argument("--max-frames", type=int, help="stop after this many frames")
    g.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    add_providers(g)
    add_threads(g, default=None)
    g.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=None,
                   help="prepare the next frame (sector crop + preprocessing) in a second thread while one is inferred "
                        "(default: on; --no-pipeline does every stage in one thread)")
    g.add_argument("--output-thread", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the overlay and write recordings in their own thread, dropping the oldest waiting frame "
                        "when it falls behind a live input (default: on; windows are still shown by the main thread)")
    g.add_argument("--spin", action=argparse.BooleanOptionalAction, default=None,
                   help="let ONNX Runtime's threads spin-wait between frames (default: off, which leaves the cores "
                        "to capture and preprocessing; on can shave a little latency on an otherwise idle box)")
    g.add_argument("--summary-json", metavar="FILE", help="also write the end-of-run summary as JSON")
    add_quiet(g, "only warnings and the summary", short=True)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The flags the user gave, as dotted RunConfig overrides (None = not given)."""
    return {
        "model": args.model,
        "input": args.input,
        "outputs": args.output,
        "roi": args.roi,
        "status": args.status,
        "source.width": args.width,
        "source.height": args.height,
        "source.fps": args.fps,
        "source.fourcc": args.fourcc,
        "source.loop": args.loop,
        "source.pace": args.pace,
        "source.reconnect_tries": args.reconnect_tries,
        "temporal.uncertain_below": args.uncertain_below,
        "temporal.ema_alpha": args.ema_alpha,
        "temporal.hold_frames": args.hold_frames,
        "temporal.freeze_frames": args.freeze_frames,
        "mask_header": args.mask_header,
        "top3": args.top3,
        "codec": args.codec,
        "rotation.max_file_mb": args.rotate_mb,
        "rotation.max_total_mb": args.keep_mb,
        "rotation.max_files": args.keep_files,
        "exam_report": args.exam_report,  # exam-hook
        "exam_id": args.exam_id,  # exam-hook
        "exam.checklist": args.checklist,  # exam-hook
        "max_frames": args.max_frames,
        "max_seconds": args.max_seconds,
        "providers": [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None,
        "threads": args.threads,
        "pipeline": args.pipeline,
        "output_thread": args.output_thread,
        "spin": args.spin,
    }


def _run(args: argparse.Namespace) -> int:
    from edge.live.config import load_run_config
    from edge.live.loop import run_loop

    setup_logging(args.quiet)
    config = load_run_config(args.config, overrides_from_args(args))
    if not config.model:  # the vendored default model: say which it is
        from edge.default_model import default_model_path, describe_model
        from edge.modelinfo import read_onnx_metadata

        config.model = str(default_model_path())
        print(describe_model(read_onnx_metadata(config.model), config.model), file=sys.stderr)
    if args.summary_json:
        from edge.live.outputs import check_file_writable

        check_file_writable(args.summary_json, f"--summary-json {args.summary_json}")
    summary = run_loop(config)
    print(summary.format())
    if args.summary_json:
        from edge.live.status import write_json_atomic

        try:
            write_json_atomic(args.summary_json, summary.to_dict())
        except OSError as exc:
            print(f"fetalplanes run: error: --summary-json {args.summary_json}: cannot write ({exc.strerror or exc})", file=sys.stderr)
            return summary.exit_code or EXIT_FAILURE
    return summary.exit_code
