"""COCO caption metrics through pycocoevalcap's own scorers, offline and without its traps.

``COCOEvalCap.evaluate()`` cannot be used as is: it builds SPICE up front, and SPICE downloads
Stanford CoreNLP on first use, so offline it fails even when only CIDEr is wanted. Here the
scorers are called directly, in the same order and on the same inputs, which reproduces the
published numbers to the last digit (the coco-caption fake-caption demo: BLEU-4 0.1908...,
CIDEr 0.5998...):

- PTB tokenisation (Java) runs ONCE over references and candidates together; it works line by
  line, so the result equals two separate runs at half the JVM start-ups.
- BLEU-1..4 ("closest" reference length), METEOR 1.5 (Java; its process is always closed),
  ROUGE-L, CIDEr-D (pycocoevalcap's ``Cider``), and SPICE only when its CoreNLP jars are
  already installed next to pycocoevalcap (never a download).
- CIDEr's document frequencies come from the references of the images scored: a subset's CIDEr
  is not comparable with the full split's. Score the whole split for paper numbers.

Values are returned in percent (x100), the unit papers print.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Hashable, Mapping

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.spice.spice import Spice
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from sc_eval.errors import DataError, MissingDependencyError
from sc_eval.io import read_json
from sc_eval.metrics.stderr import mean_stderr

log = logging.getLogger(__name__)

_JAVA_HINT = ("install a Java runtime (OpenJDK 17 works), e.g. `apt-get install "
              "openjdk-17-jre-headless` or `conda install -c conda-forge openjdk`, and put "
              "`java` on PATH")
_SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
# Characters Java's line reader treats as line ends but str.split("\n") does not: left in a
# caption they would shift every later caption onto the wrong image.
_LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\x85\u2028\u2029"})


def require_java() -> str:
    """Path of ``java``, or MissingDependencyError saying how to get it."""
    java = shutil.which("java")
    if java is None:
        raise MissingDependencyError(
            f"caption metrics: `java` not found on PATH (PTB tokenisation and METEOR run on "
            f"Java); {_JAVA_HINT}")
    return java


def _pycocoevalcap_dir() -> Path:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "caption metrics need pycocoevalcap: `pip install pycocoevalcap` (or sc-eval's "
            "caption extra)")
    return Path(list(spec.submodule_search_locations)[0])


def spice_status() -> tuple[bool, str]:
    """(available, reason). SPICE needs Stanford CoreNLP 3.6.0 jars in pycocoevalcap/spice/lib."""
    lib = _pycocoevalcap_dir() / "spice" / "lib"
    missing = [j for j in _SPICE_JARS if not (lib / j).is_file()]
    if missing:
        return False, (f"SPICE unavailable: {', '.join(missing)} not in {lib} (copy them from "
                       "stanford-corenlp-full-2015-12-09.zip to enable SPICE)")
    return True, "SPICE available"


def _tokenize_once(gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, str], ids: list):
    both: dict[tuple[str, Any], list[dict]] = {}
    for i in ids:
        both[("ref", i)] = [{"caption": c.translate(_LINE_BREAKS)} for c in gts[i]]
    for i in ids:
        both[("hyp", i)] = [{"caption": res[i].translate(_LINE_BREAKS)}]
    tok = PTBTokenizer().tokenize(both)
    ref_tok, hyp_tok = {}, {}
    for i in ids:
        refs, hyp = tok.get(("ref", i), []), tok.get(("hyp", i), [])
        if len(refs) != len(gts[i]) or len(hyp) != 1:
            raise DataError(f"caption metrics: PTB tokenisation lost lines for image {i!r}; "
                            "check that its captions are plain text")
        ref_tok[i], hyp_tok[i] = refs, hyp
    return ref_tok, hyp_tok


def _meteor(ref_tok: dict, hyp_tok: dict) -> float:
    scorer = Meteor()
    proc = scorer.meteor_p
    try:
        score, _ = scorer.compute_score(ref_tok, hyp_tok)
        return float(score)
    except ValueError:
        # An empty line instead of a number: the JVM died (often -Xmx2G could not be reserved).
        if scorer.lock.locked():
            scorer.lock.release()  # else the wrapper's __del__ would block on it forever
        proc.kill()
        err = proc.stderr.read().decode(errors="replace").strip()[-500:]
        raise MissingDependencyError(
            f"caption metrics: METEOR (java -jar meteor-1.5.jar) stopped answering: {err or 'no message'}; "
            "it needs about 2 GB of memory for the JVM") from None
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        proc.kill()
        proc.wait()


def score_captions(gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, str],
                   spice: str | bool = "auto", meteor: bool = True, with_stderr: bool = False):
    """Corpus metrics of candidate captions ``res`` (id -> caption) against references ``gts``
    (id -> list of captions), on exactly the ids of ``res``.

    Returns bleu1..bleu4, meteor, rouge_l, cider (percent) and, with ``spice`` "auto",
    ``spice``: a number when its jars are installed, else None (logged why); ``spice=True``
    raises when unavailable, ``spice=False`` skips it (no key). ``meteor=False`` skips METEOR
    and its ~10 s JVM start-up (no key), for quick validation scores during training.

    ``with_stderr`` returns ``(metrics, stderr)``: the standard error of CIDEr and ROUGE-L over
    the images (both corpus scores are means of per-image scores; CIDEr's document frequencies are
    held at the whole corpus's). BLEU and METEOR pool n-gram / alignment counts over the corpus
    and get none.
    """
    require_java()
    if spice not in ("auto", True, False):
        raise DataError(f"caption metrics: spice must be 'auto', True or False, got {spice!r}")
    ids = _checked_ids(gts, res)
    want_spice, why = False, ""
    if spice is not False:
        want_spice, why = spice_status()
        if not want_spice and spice is True:
            raise MissingDependencyError(f"caption metrics: {why}")

    ref_tok, hyp_tok = _tokenize_once(gts, res, ids)
    bleu, _ = Bleu(4).compute_score(ref_tok, hyp_tok, verbose=0)
    out: dict[str, float | None] = {f"bleu{n + 1}": 100.0 * float(b) for n, b in enumerate(bleu)}
    if meteor:
        out["meteor"] = 100.0 * _meteor(ref_tok, hyp_tok)
    each = _rouge_cider(ref_tok, hyp_tok)
    out["rouge_l"] = 100.0 * float(each["rouge_l"][0])
    out["cider"] = 100.0 * float(each["cider"][0])
    if want_spice:
        out["spice"] = 100.0 * float(Spice().compute_score(ref_tok, hyp_tok)[0])
    elif spice == "auto":
        log.warning("%s; reporting spice as null", why)
        out["spice"] = None
    if with_stderr:
        stderr = {k: mean_stderr(list(per_image)) for k, (_, per_image) in each.items()}
        return out, {k: v for k, v in stderr.items() if v is not None}
    return out


def per_image_scores(gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, str]) -> dict[str, dict]:
    """{"cider": {id: CIDEr-D}, "rouge_l": {id: ROUGE-L}} per image, in percent: the corpus
    scores are their means. CIDEr-D's document frequencies come from the references alone, so
    two runs captioning the same images are scored on the same scale, image by image."""
    require_java()
    ref_tok, hyp_tok = _tokenize_once(gts, res, _checked_ids(gts, res))
    order = list(ref_tok)  # both scorers return per-image scores in the order of the references
    return {k: {i: 100.0 * float(v) for i, v in zip(order, per_image)}
            for k, (_, per_image) in _rouge_cider(ref_tok, hyp_tok).items()}


def _checked_ids(gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, str]) -> list:
    """The ids of ``res``, each with a string caption and a list of string references."""
    ids = list(res)
    if not ids:
        raise DataError("caption metrics: no candidate captions to score")
    for i in ids:
        if not isinstance(res[i], str):
            raise DataError(f"caption metrics: the caption of image {i!r} is {res[i]!r}, not a string")
        refs = gts.get(i)
        if not refs:
            raise DataError(f"caption metrics: image {i!r} has a candidate but no reference captions")
        if isinstance(refs, str) or not all(isinstance(c, str) for c in refs):
            raise DataError(f"caption metrics: the references of image {i!r} must be a list of strings")
    return ids


def _rouge_cider(ref_tok: dict, hyp_tok: dict) -> dict:
    """{"rouge_l" | "cider": (corpus score, per-image scores in ref_tok's order)}, as fractions."""
    return {"rouge_l": Rouge().compute_score(ref_tok, hyp_tok), "cider": Cider().compute_score(ref_tok, hyp_tok)}


def _load(source, what: str):
    if isinstance(source, (str, os.PathLike)):
        return read_json(source), str(source)
    return source, what


def load_coco_references(annotations, name: str | None = None) -> tuple[dict, list]:
    """(image id -> reference captions, image ids in the file's order) from a COCO captions file
    (``{"images": [...], "annotations": [{"image_id", "caption"}, ...]}``), path or loaded."""
    data, name = _load(annotations, name or "annotations")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DataError(f"{name}: not a COCO captions file (expected an object with an "
                        "'annotations' list of {image_id, caption})")
    refs: dict = {}
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise DataError(f"{name}: annotations[{k}] needs an image_id and a caption string")
        refs.setdefault(ann["image_id"], []).append(ann["caption"])
    order = [img["id"] for img in data.get("images", []) if isinstance(img, dict) and img.get("id") in refs]
    if len(order) != len(refs):
        order = list(refs)  # no usable "images" list: annotation order
    return refs, order


def score_coco_results(results_json, annotations_json, spice: str | bool = "auto",
                       meteor: bool = True) -> dict:
    """Score a COCO results file ``[{"image_id", "caption"}, ...]`` on exactly its image ids.

    Returns ``{"n_images", "metrics"}``. Images are scored in the annotation file's image order,
    as COCOEvalCap does, so floating-point sums match it bit for bit. A duplicated image id
    keeps its FIRST caption (logged); COCO's ``loadRes`` would instead pass both captions on
    and crash BLEU's one-candidate assertion. An image id absent from the annotations is a
    DataError, as in ``loadRes``.
    """
    require_java()
    results, rname = _load(results_json, "results")
    if not isinstance(results, list) or not results:
        raise DataError(f"{rname}: expected a non-empty JSON list of {{\"image_id\", \"caption\"}}")
    ann_data, aname = _load(annotations_json, "annotations")
    refs, order = load_coco_references(ann_data, aname)
    res: dict = {}
    duplicates = 0
    for k, item in enumerate(results):
        if not isinstance(item, dict) or "image_id" not in item or not isinstance(item.get("caption"), str):
            raise DataError(f"{rname}: item {k} must be an object with an image_id and a caption string")
        image_id = item["image_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise DataError(f"{rname}: item {k} has image_id {image_id!r}; expected an integer")
        if image_id in res:
            duplicates += 1
            continue
        res[image_id] = item["caption"]
    if duplicates:
        log.warning("%s: %d duplicate image ids; kept the first caption of each", rname, duplicates)
    absent = [i for i in res if i not in refs]
    if absent:
        raise DataError(f"{rname}: {len(absent)} image ids are not in {aname} (first: "
                        f"{absent[:5]}); score against the annotations of the same split")
    ordered = {i: res[i] for i in order if i in res}
    metrics = score_captions({i: refs[i] for i in ordered}, ordered, spice=spice, meteor=meteor)
    return {"n_images": len(ordered), "metrics": metrics}
