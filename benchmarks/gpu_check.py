"""`make gpu-check`: every sc-eval command at the sizes users run, with random weights, on one GPU
in about seven minutes on an H200 (its budget: six). Prints ONE JSON object on stdout; progress goes to stderr.

Stages (a stage that fails is recorded as ``{"error": ...}`` and the others still run):

- ``step``: one training step of SuperClass ViT-B/16 (eager and ``torch.compile``d) and of
  open_clip's CLIP ViT-B-16, bf16, batch 256, each in its own process
  (``benchmarks/pretrain_step.py --flops``): step time, images/s, compile time, and the model
  FLOPs utilisation: FLOPs of one forward + backward counted from the model (torch's
  FlopCounterMode: matrix products, convolution, attention) over the step time, divided by
  ``--peak-tflops`` (default 790: the dense bf16 peak assumed for an H200) and by the dense
  matmul rate measured on this device.
- ``pretrain``: ``sc-eval pretrain --model vit-b-16`` end to end from 224-px JPEG webdataset
  shards with ``--workers`` loader processes, decoding on the CPU and on the GPU, against the
  same step alone on a device-resident batch (``benchmarks/pretrain_e2e.py``), and the count of
  host-device synchronisations before the first save.
- ``caption``: ``sc-eval caption --lm random:gpt2`` (the reference recipe: transformer mapper,
  frozen GPT-2, batch 40): training images/s ((image, caption) pairs a second) and batched
  beam-5 decoding images/s. Scoring runs the PTB tokenizer and METEOR in Java; without Java the
  command runs with ``--predict-only`` and ``skipped`` says so.
- ``llava``: ``sc-eval llava --llm random:vicuna-7b`` (all 32 layers, LoRA r128, bf16, gradient
  checkpointing, batch 16): stage-1 and stage-2 tokens/s and peak GB; then the trained adapter
  answers the same questions at batch 16 and at batch 1 (greedy; a copy of the VQAv2 task with
  a shorter answer limit, since random weights never stop): questions/s each and whether every
  answer is the same.
- ``probe``, ``zeroshot``: ``sc-eval probe`` (linear + few-shot) and ``sc-eval zeroshot`` (LiT)
  on a real-size random tower: wall time and top-1.

Data: the embedded world (``ensure_world``) and the synthetic shards; the run directories and a
fresh feature cache live in one temporary folder (``--work-dir`` keeps them). ``--tiny`` runs
the same stages on the CPU with small models (tiny ViTs, random:gpt2-tiny, random:llama-tiny), a
small world and a few steps each: the test suite runs it, so the check cannot rot between GPU
runs. Its figures say nothing about a GPU.

    python benchmarks/gpu_check.py [--tiny] [--peak-tflops 790] [--workers N] [--work-dir DIR]
                                   [--stages step,pretrain,caption,llava,probe,zeroshot]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sc_eval.runtime.rundir import package_versions

HERE = Path(__file__).resolve().parent
STAGES = ("step", "pretrain", "caption", "llava", "probe", "zeroshot")
H200_BF16_DENSE_TFLOPS = 790.0

# What each mode runs. GPU: real sizes, steps as few as give a steady figure (the budget is
# six minutes in all); tiny: the same commands at toy size on a CPU.
GPU = dict(
    device="cuda", precision="bf16", budget_s=360,
    step=dict(batch=256, iters=5, warmup=2, compiled=True, timeout=240),
    pretrain=dict(model="vit-b-16", shards=28, per_shard=256, batch=256, steps=30, skip=10, log_every=5,
                  decode="cpu,gpu", timeout=240),
    caption=dict(encoder="random:vit-b-16", lm="random:gpt2", recipe="reference", steps=60, batch=40, limit=128,
                 decode_batch=32, beam=5, max_new_tokens=None, timeout=240),
    llava=dict(encoder="random:vit-b-16", llm="random:vicuna-7b", lora_r=128, lora_alpha=256, batch=16,
               stage1_steps=4, stage2_steps=8, questions=32, new_tokens=16, eval_batch=16, timeout=420),
    probe=dict(encoder="random:vit-b-16", epochs=20, shots=10, timeout=180),
    zeroshot=dict(encoder="random:vit-b-16", steps=100, batch=128, timeout=180),
)
TINY = dict(
    device="cpu", precision="fp32", budget_s=120,
    step=dict(batch=1, iters=1, warmup=0, compiled=False, timeout=300),
    pretrain=dict(model="sc-vit-tiny", shards=4, per_shard=16, batch=16, steps=4, skip=2, log_every=1,
                  decode="cpu", timeout=300),
    caption=dict(encoder="random:sc-vit-micro", lm="random:gpt2-tiny", recipe="world", steps=3, batch=8, limit=4,
                 decode_batch=4, beam=5, max_new_tokens=8, timeout=300),
    llava=dict(encoder="random:sc-vit-micro", llm="random:llama-tiny", lora_r=4, lora_alpha=8, batch=4,
               stage1_steps=2, stage2_steps=2, questions=4, new_tokens=8, eval_batch=4, timeout=300),
    probe=dict(encoder="random:sc-vit-micro", epochs=5, shots=2, timeout=300),
    zeroshot=dict(encoder="random:sc-vit-micro", steps=3, batch=8, timeout=300),
)
# The tiny world: every part the stages read, a few items each.
TINY_WORLD = dict(pretrain=64, shard_size=32, coco_train=16, coco_val=12, coco_test=2, textvqa_train=4,
                  textvqa_val=2, gqa_train=4, gqa_testdev=2, pope_images=2, scienceqa=4, class_train=4,
                  class_val=1, class_test=2, vizwiz_val=2, vizwiz_test=2, mme_images=1, mmbench_dev=4,
                  mmbench_test=2, seedbench=4, mmmu_val=2, battery_train=4)


class StageError(Exception):
    """A stage's command failed; the message is what the JSON records."""


def progress(msg: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Check:
    def __init__(self, args):
        self.args = args
        self.cfg = TINY if args.tiny else GPU
        self.device = self.cfg["device"]
        self.precision = self.cfg["precision"]
        self.work = Path(args.work_dir or tempfile.mkdtemp(prefix="sc-eval-gpu-check-")).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
                    # a fresh feature cache: every command encodes, as a first run does
                    "SC_EVAL_HOME": str(self.work / "home")}
        self.skipped: list[str] = []
        self.results: dict = {}
        self._world = None
        self._world_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------
    def world(self) -> Path:
        with self._world_lock:  # the prefetch thread may be writing it: wait for that
            if self._world is None:
                from sc_eval.world.build import ensure_world, write_world

                progress("embedded world ...")
                self._world = (write_world(self.work / "world", seed=0, **TINY_WORLD) if self.args.tiny
                               else Path(ensure_world()))
            return self._world

    def prefetch_world(self) -> threading.Thread:
        """Write the world (CPU) while the step stage runs on the GPU in its own process. A
        failure here is not lost: the first stage that needs the world tries again and records it."""
        def build():
            try:
                self.world()
            except Exception:  # noqa: BLE001 - met again, and recorded, by the stage that needs it
                pass

        t = threading.Thread(target=build, name="world", daemon=True)
        t.start()
        return t

    def sc_eval(self, name: str, argv: list[str], timeout: float) -> float:
        """Run `sc-eval ARGV` in its own process (its log in the work folder); returns wall seconds."""
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "sc_eval", *argv, "--device", self.device, "--precision", self.precision]
        return self._run(name, cmd, log, timeout)

    def _run(self, name, cmd, log, timeout, stdout=None) -> float:
        progress(f"{name}: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}")
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as err:
            try:
                proc = subprocess.run(cmd, stdout=stdout or err, stderr=err, env=self.env, timeout=timeout,
                                      cwd=self.work, text=True)
            except subprocess.TimeoutExpired:
                raise StageError(f"{name}: timed out after {timeout:.0f} s (log: {log})") from None
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise StageError(f"{name}: exit status {proc.returncode}: {_last_error(log)} (log: {log})")
        return wall

    # -- stages ----------------------------------------------------------------------------
    def step(self) -> dict:
        c = self.cfg["step"]
        log = self.work / "logs" / "step.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = self.work / "logs" / "step.json"
        kinds = ["superclass", *(["superclass_compiled"] if c["compiled"] else []), "open_clip"]
        cmd = [sys.executable, str(HERE / "pretrain_step.py"), "--device", self.device, "--precision", self.precision,
               "--batch-size", str(c["batch"]), "--only", ",".join(kinds), "--iters", str(c["iters"]),
               "--warmup", str(c["warmup"]), "--flops", "--peak-tflops", str(self.args.peak_tflops)]
        with open(out, "w", encoding="utf-8") as f:
            self._run("step", cmd, log, c["timeout"], stdout=f)
        got = json.loads(out.read_text().strip().splitlines()[-1])
        res = {"model": "ViT-B/16 224px", "batch_size": c["batch"], "precision": self.precision,
               "peak_tflops": self.args.peak_tflops, "matmul_tflops": got.get("matmul_tflops")}
        for kind in kinds:
            s = got[f"{kind}_step_s"]
            res[f"{kind}_step_s"] = s
            res[f"{kind}_images_per_s"] = round(c["batch"] / s, 1)
            for key in ("peak_mb", "gflop_per_image", "tflops", "mfu", "of_matmul", "compile_s", "over_eager_step"):
                if got.get(f"{kind}_{key}") is not None:
                    res[f"{kind}_{key}"] = got[f"{kind}_{key}"]
        res["flops_per_step"] = round(got["superclass_gflop_per_image"] * 1e9 * c["batch"])
        res["open_clip_over_superclass_step"] = round(res["open_clip_step_s"] / res["superclass_step_s"], 3)
        return res

    def pretrain(self) -> dict:
        """`sc-eval pretrain` end to end from JPEG shards against its step alone, once per decode
        mode (``benchmarks/pretrain_e2e.py``, which writes the shards as ``loader.py`` does)."""
        c = self.cfg["pretrain"]
        log = self.work / "logs" / "pretrain.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = self.work / "logs" / "pretrain.json"
        cmd = [sys.executable, str(HERE / "pretrain_e2e.py"), "--device", self.device, "--precision", self.precision,
               "--model", c["model"], "--batch-size", str(c["batch"]), "--workers", str(self.args.workers),
               "--steps", str(c["steps"]), "--skip", str(c["skip"]), "--log-every", str(c["log_every"]),
               "--decode", c["decode"], "--n-shards", str(c["shards"]), "--per-shard", str(c["per_shard"])]
        with open(out, "w", encoding="utf-8") as f:
            wall = self._run("pretrain", cmd, log, c["timeout"], stdout=f)
        res = json.loads(out.read_text().strip().splitlines()[-1])
        res.pop("device", None)
        res["images"] = c["shards"] * c["per_shard"]
        res["wall_s"] = round(wall, 1)
        return res

    def caption(self) -> dict:
        c = self.cfg["caption"]
        run = self.work / "runs" / "caption"
        argv = ["caption", "--encoder", c["encoder"], "--lm", c["lm"], "--recipe", c["recipe"],
                "--data-root", str(self.world()), "--steps", str(c["steps"]), "--batch-size", str(c["batch"]),
                "--limit", str(c["limit"]), "--decode-batch-size", str(c["decode_batch"]), "--beam", str(c["beam"]),
                "--output-dir", str(run)]
        if c["max_new_tokens"]:
            argv += ["--max-new-tokens", str(c["max_new_tokens"])]
        scored = shutil.which("java") is not None and not self.args.no_caption_score
        if not scored:
            argv.append("--predict-only")
            self.skipped.append("caption scoring (BLEU/METEOR/ROUGE-L/CIDEr): "
                                + ("--no-caption-score" if self.args.no_caption_score else "no Java on this machine")
                                + "; captions written, score them with `sc-eval score coco_caption`")
        wall = self.sc_eval("caption", argv, c["timeout"])
        train = json.loads((run / "adapter" / "config.json").read_text())["train"]
        entry = json.loads((run / "results.json").read_text())["results"]["coco_caption"]
        return {"encoder": c["encoder"], "lm": c["lm"], "recipe": c["recipe"], "train_steps": train["steps"],
                "train_batch_size": train["batch_size"], "train_images_per_s": round(train["images_per_s"], 1),
                "train_peak_memory_mb": train["peak_memory_mb"], "peak_memory_kind": train["peak_memory_kind"],
                "decode_images": entry["timing"]["predicted"], "decode_batch_size": c["decode_batch"],
                "beam": c["beam"], "decode_images_per_s": entry["timing"]["docs_per_s"],
                "scored": scored, "metrics": entry.get("metrics") or None, "wall_s": round(wall, 1)}

    def llava(self) -> dict:
        c = self.cfg["llava"]
        tasks = self._short_vqa_task(c["new_tokens"])
        common = ["--encoder", c["encoder"], "--llm", c["llm"], "--data-root", str(self.world()),
                  "--include-tasks", str(tasks), "--tasks", "vqav2_check", "--limit", str(c["questions"])]
        a, b = self.work / "runs" / "llava", self.work / "runs" / "llava-batch1"
        wall = self.sc_eval("llava", ["llava", *common, "--lora-r", str(c["lora_r"]), "--lora-alpha", str(c["lora_alpha"]),
                                      "--grad-checkpointing", "--batch-size", str(c["batch"]),
                                      "--stage1-steps", str(c["stage1_steps"]), "--stage2-steps", str(c["stage2_steps"]),
                                      "--eval-batch-size", str(c["eval_batch"]), "--output-dir", str(a)], c["timeout"])
        wall1 = self.sc_eval("llava-batch1", ["llava", *common, "--adapter", str(a / "adapter"),
                                              "--eval-batch-size", "1", "--output-dir", str(b)], c["timeout"])
        ra, rb = (json.loads((r / "results.json").read_text()) for r in (a, b))
        answers = [[json.loads(x)["prediction"] for x in (r / "predictions" / "vqav2_check.jsonl").read_text().splitlines()]
                   for r in (a, b)]
        same = sum(x == y for x, y in zip(*answers))
        res = {"encoder": c["encoder"], "llm": c["llm"], "lora_r": c["lora_r"], "batch_size": c["batch"],
               "grad_checkpointing": True}
        for stage in ("stage1", "stage2"):
            s = ra["training"][stage]
            res[f"{stage}_steps"] = s["steps"]
            res[f"{stage}_tokens_per_s"] = round(s["tokens_per_s"], 1)
            res[f"{stage}_peak_gb"] = round(s["peak_memory_mb"] / 1024, 2)
        ta, tb = ra["results"]["vqav2_check"]["timing"], rb["results"]["vqav2_check"]["timing"]
        res.update({"questions": len(answers[0]), "max_new_tokens": c["new_tokens"],
                    f"questions_per_s_batch{c['eval_batch']}": ta["docs_per_s"], "questions_per_s_batch1": tb["docs_per_s"],
                    "batched_speedup": round(ta["docs_per_s"] / tb["docs_per_s"], 2),
                    "identical_answers": same, "all_answers_identical": same == len(answers[0]) == len(answers[1]),
                    "wall_s": round(wall, 1), "wall_batch1_s": round(wall1, 1)})
        return res

    def _short_vqa_task(self, new_tokens: int) -> Path:
        """A copy of the VQAv2 val task with ``max_new_tokens`` lowered (a random LLM never stops,
        so every answer would run to 128 tokens), through --include-tasks."""
        import yaml

        from sc_eval.evaluation.tasks import discover

        spec = dict(discover()["vqav2_val"].raw)  # its fields with its `include:` merged in
        spec.update(task="vqav2_check", aliases=[], groups=[], generation_kwargs={"max_new_tokens": new_tokens})
        folder = self.work / "tasks" / "vqav2_check"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vqav2_check.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        (folder / "utils.py").write_text("from sc_eval.tasks.vqav2.utils import *  # noqa: F401,F403\n")
        return self.work / "tasks"

    def probe(self) -> dict:
        c = self.cfg["probe"]
        run = self.work / "runs" / "probe"
        wall = self.sc_eval("probe", ["probe", "--encoder", c["encoder"], "--data", str(self.world() / "classification"),
                                      "--tasks", "linear,fewshot", "--epochs", str(c["epochs"]), "--shots", str(c["shots"]),
                                      "--output-dir", str(run)], c["timeout"])
        res = json.loads((run / "results.json").read_text())["results"]
        return {"encoder": c["encoder"], "wall_s": round(wall, 1),
                "linear_top1": res["probe_linear"]["metrics"]["top1"],
                f"{c['shots']}shot_top1": res[f"probe_{c['shots']}shot"]["metrics"]["top1"],
                "n_eval": res["probe_linear"]["n_docs"]["evaluated"]}

    def zeroshot(self) -> dict:
        c = self.cfg["zeroshot"]
        run = self.work / "runs" / "zeroshot"
        w = self.world()
        wall = self.sc_eval("zeroshot", ["zeroshot", "--encoder", c["encoder"], "--data", str(w / "classification"),
                                         "--pairs", str(w / "pretrain" / "pairs.jsonl"), "--steps", str(c["steps"]),
                                         "--batch-size", str(c["batch"]), "--output-dir", str(run)], c["timeout"])
        res = json.loads((run / "results.json").read_text())["results"]["zeroshot_lit"]
        return {"encoder": c["encoder"], "lit_steps": c["steps"], "wall_s": round(wall, 1),
                "top1": res["metrics"]["top1"], "n_eval": res["n_docs"]["evaluated"]}


def _last_error(log: Path) -> str:
    """The line that says what went wrong: sc-eval's one-line error, else the last line."""
    lines = [x.strip() for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    for x in reversed(lines):
        if x.startswith("sc-eval: error:"):
            return x
    return lines[-1] if lines else "(no output)"


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU, small models, a few steps (what the tests run)")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS,
                   help="the accelerator's dense bf16 peak the FLOPs utilisation divides by (H200: 790)")
    p.add_argument("--workers", type=int, default=None,
                   help="pretraining loader processes (default: min(14, CPUs - 2); --tiny: 0)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma list of " + ",".join(STAGES))
    p.add_argument("--work-dir", default=None, help="keep run directories here (default: a temporary folder, removed)")
    p.add_argument("--no-caption-score", action="store_true", help="caption without scoring even when Java is present")
    args = p.parse_args(argv)
    if args.workers is None:
        args.workers = 0 if args.tiny else max(0, min(14, (os.cpu_count() or 2) - 2))
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")

    t_start = time.perf_counter()
    check = Check(args)
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA device here; run with --tiny for the CPU form")
    out = {"check": "sc-eval gpu-check", "tiny": args.tiny, "device": _device_name(check.device),
           "precision": check.precision, "versions": package_versions(), "java": shutil.which("java") is not None,
           "work_dir": str(check.work) if args.work_dir else None, "budget_s": check.cfg["budget_s"]}
    # The step stage needs no world: the world is written meanwhile, and finished before any
    # other stage starts (so it never competes with the pretraining loader's processes).
    prefetch = (check.prefetch_world() if stages[:1] == ["step"] and
                set(stages) & {"caption", "llava", "probe", "zeroshot"} else None)
    for name in stages:
        if prefetch is not None and name != "step":
            prefetch.join()
            prefetch = None
        t0 = time.perf_counter()
        try:
            check.results[name] = getattr(check, name)()
        except Exception as e:  # noqa: BLE001 - a failed stage is a result; the others still run
            check.results[name] = {"error": str(e) if isinstance(e, StageError) else f"{type(e).__name__}: {e}"}
        check.results[name]["stage_s"] = round(time.perf_counter() - t0, 1)
        progress(f"{name}: {json.dumps(check.results[name])}")
    out.update(check.results)
    out["skipped"] = check.skipped
    out["errors"] = [n for n in stages if "error" in check.results[n]]
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    out["within_budget"] = out["wall_s"] <= check.cfg["budget_s"]
    if not args.work_dir:
        shutil.rmtree(check.work, ignore_errors=True)
    print(json.dumps(out))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
