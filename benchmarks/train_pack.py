#!/usr/bin/env python3
"""The model pack's training run: ImageNet-initialised fine-tuning, then distillation.

Two steps, so the heavy one can run on a machine that has neither the data folder nor TensorFlow:

  prepare  (here, TensorFlow-free: NumPy/OpenCV)  FER2013 train split 85/15 into train/validation
           by `training.splits` (seed 42, byte duplicates on one side), PublicTest with images
           byte-identical to a training image removed, CK+48 (contempt dropped) for the
           cross-dataset row; written as one compressed file of 48×48 grey faces.
  report   rewrite benchmarks/results/pack.md and modelpack/README.md from a built pack (after a
           later ablation)
  train    (any Keras 3 backend; see the GPU note below)  the jobs below, each writing its
           metrics to results.json as it ends, the pack's weights to OUT/<arch>.weights.npz.

The training graph is the exported model behind a TensorFlow-free input stage: 48×48 grey →
bilinear resize to the model size (the half-pixel rule of preprocess.resize's cv2.INTER_LINEAR)
→ grey to RGB → x/255 (preprocess.normalize) → training-only augmentation (`training.augment`) →
the registry's model (`training.models.build_model`, unchanged, so the weights load into it).

Jobs (`--jobs`):
  sweep    MobileNetV2 from ImageNet weights at each `--sizes` for a short equal budget; the size
           validation picks (the smallest within `--size-tolerance` of the best) is used after.
  pack     MobileNetV2 and MobileNetV3-Small from ImageNet weights (stage 1: head on cached
           features; stage 2: all layers), the teacher (both, flip-averaged) cached once, then
           MobileNetV3-Large and EfficientNetB0 distilled from it.
  ablation the same students without distillation, and MobileNetV2/MobileNetV3-Small from scratch,
           each at the epoch count its counterpart used.

Continuing: `--init-pack DIR` starts each job from DIR's model of its architecture (Keras weights read
back from its ONNX file by `training.onnx_weights`, BatchNorm frozen as folded) at `--lr`, e.g. to give
an under-trained model more epochs or a better teacher without the GPU run that made it; with
`--pack-bn train` BatchNorm trains too, once `training.batchnorm` has measured its statistics on
`--bn-images` training faces (the same function, statistics the batches will agree with). An
interrupted job continues from its last finished epoch (`OUT/<job>.last.npz`) when the same command
runs again; a rerun into that OUT with another recipe (`--lr`, BatchNorm mode, `--shift`, `--cutout`,
...: `resume_conflicts`) is refused (new OUT, or `--no-resume`). `replace` swaps a later run's model
into the pack only when validation prefers it by `--margin`.

Epochs: each job has a time budget; after one warm-up epoch the epoch count that fits is fixed and
a cosine schedule runs over it (`results.json` records the epochs, so a rerun can pass them with
`--epochs`). Selection: the epoch with the best validation accuracy; test computed once at the end.

On a GPU (measured on an H200 lent for 15 minutes, Keras 3.15 on JAX 0.11.2, the image has no
TensorFlow): the MobileNetV2 128-px train step WITHOUT the augmentation layers compiled in 40 s and
then ran ~10,000 images/s; WITH them (RandomRotation/RandomZoom inside the jitted step) XLA had not
finished compiling after 9 minutes (GPU idle, ~1 % utilisation), so no epoch ran. Keras-on-torch
earlier ran ~325 images/s, bound the same way. Hence `--augment host`: the same transforms with
OpenCV per batch on the host (`training.augment.augment_batch`), only the model in the jitted step
(checked on the CPU, JAX and TensorFlow backends; not yet run on a GPU).

Usage:
  python benchmarks/train_pack.py prepare --data-root ../shared/data --out .pack/fer2013.npz
  python benchmarks/train_pack.py train --data .pack/fer2013.jpeg.npz \
      --weights-dir ../shared/weights --jobs sweep,pack --out runs/pack
  python benchmarks/train_pack.py build --run runs/pack --out modelpack
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ferlite.training.metrics import accuracy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NUM_CLASSES = 7
T0 = time.perf_counter()
PACK_RECORD = ROOT / "benchmarks" / "results" / "pack.json"
WEIGHT_FILES = {"mobilenet_v2": "mobilenet_v2_imagenet_notop.weights.h5",
                "mobilenet_v3_small": "mobilenet_v3_small_imagenet_notop.weights.h5"}


# ---------------------------------------------------------------- prepare (no Keras needed)
def prepare(data_root: Path, out: Path) -> None:
    """Two files: OUT (decoded 48×48 grey arrays of every split, for evaluation here) and
    OUT with suffix `.jpeg.npz` (the train and validation images as their original JPEG bytes,
    the smallest form to send to a training machine: 47 MB instead of 67 MB decoded)."""
    from ferlite.base.labels import EMOTIONS
    from ferlite.training.datasets import load_folder, parse_class_map
    from ferlite.training.splits import exclude_duplicates, split_indices

    fer = load_folder(data_root / "fer2013" / "train", 48)
    idx = split_indices(fer.samples, (0.85, 0.15), seed=42)
    train, val = fer.subset(idx["train"]), fer.subset(idx["val"])
    test, removed = exclude_duplicates(load_folder(data_root / "fer2013" / "publictest", 48), fer)
    ck = load_folder(data_root / "ck48", 48, class_map=parse_class_map(["contempt=drop"]))
    arrays = {}
    for name, part in (("train", train), ("val", val), ("test", test), ("ck48", ck)):
        arrays[f"x_{name}"] = part.pixels[..., 0]
        arrays[f"y_{name}"] = part.labels.astype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    blobs = {}
    for name, part in (("train", train), ("val", val)):
        raw = [Path(s.source).read_bytes() for s in part.samples]
        blobs[f"jpeg_{name}"] = np.frombuffer(b"".join(raw), dtype=np.uint8)
        blobs[f"offsets_{name}"] = np.cumsum([0] + [len(r) for r in raw]).astype(np.int64)
        blobs[f"y_{name}"] = part.labels.astype(np.uint8)
    np.savez(out.with_suffix(".jpeg.npz"), **blobs)
    manifest = {"labels": list(EMOTIONS), "split": "fer2013/train 85/15 by training.splits seed 42",
                "test_duplicates_removed": removed,
                "counts": {k[2:]: int(v.shape[0]) for k, v in arrays.items() if k.startswith("y_")},
                "val_files": sorted(Path(s.source).name for s in val.samples)}
    out.with_suffix(".json").write_text(json.dumps(manifest, indent=1))
    print(json.dumps({k: v for k, v in manifest.items() if k != "val_files"}, indent=1))


def load_data(path: Path, limit: int = 0) -> dict[str, np.ndarray]:
    """The arrays `prepare` wrote; JPEG blobs are decoded (cv2, as training.datasets does)."""
    raw = dict(np.load(path))
    data = {k: v for k, v in raw.items() if k.startswith(("x_", "y_"))}
    for name in ("train", "val"):
        if f"jpeg_{name}" in raw:
            import cv2

            blob, off = raw[f"jpeg_{name}"], raw[f"offsets_{name}"]
            data[f"x_{name}"] = np.stack([cv2.imdecode(blob[off[i]:off[i + 1]], cv2.IMREAD_GRAYSCALE)
                                          for i in range(len(off) - 1)])
    if limit:
        from ferlite.training.pack import smoke_subset

        data = smoke_subset(data, limit)
    return data


# ---------------------------------------------------------------- train (Keras, any backend)
def _keras():
    import keras
    return keras


def training_graph(model, size: int, augment: bool, seed: int, shift: float = 0.0, cutout: float = 0.0):
    """48×48 grey faces in [0, 255] → the model's [0, 1] RGB input at `size` → the model."""
    keras = _keras()
    from ferlite.training.augment import AugmentConfig, augmenter

    inputs = keras.Input((48, 48, 1), name="grey48")
    x = keras.layers.Resizing(size, size, interpolation="bilinear", name="resize")(inputs)
    x = keras.layers.Concatenate(name="rgb")([x, x, x])
    x = keras.layers.Rescaling(1.0 / 255.0, name="normalize")(x)
    if augment:
        x = augmenter(AugmentConfig(shift=shift, cutout=cutout), seed=seed)(x)
    return keras.Model(inputs, model(x), name=f"train_{model.name}")


def host_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, workers: int, config=None):
    """A Keras PyDataset of whole shuffled batches augmented on the host (`augment_batch`, on the
    48x48 faces): the train step then holds only the model. Each batch draws from its own
    generator (seed, epoch, index), so worker threads never share one and a rerun is the same."""
    keras = _keras()
    from ferlite.training.augment import AugmentConfig, augment_batch

    config = config or AugmentConfig()

    class HostBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=workers, use_multiprocessing=False)
            self.start_at(0)

        def __len__(self) -> int:
            return len(x) // batch

        def __getitem__(self, i: int):
            idx = np.sort(self.order[i * batch:(i + 1) * batch])
            return augment_batch(x[idx], np.random.default_rng((seed, self.epoch, i)), config), y[idx]

        def on_epoch_end(self) -> None:
            self.start_at(self.epoch + 1)

        def start_at(self, epoch: int) -> None:
            """The order and draws of `epoch`, as an uninterrupted run would have them."""
            self.epoch = epoch
            self.order = np.random.default_rng((seed, epoch)).permutation(len(x))

    return HostBatches()


class CosineWithWarmup:
    """Per-batch learning rate: linear warm-up over the first epoch, then cosine to 1 % over the
    epochs fixed after it (`total_epochs` is set once the first epoch's time is known)."""

    def __init__(self, peak: float, steps_per_epoch: int, total_epochs: int = 1) -> None:
        self.peak, self.steps, self.total_epochs = peak, steps_per_epoch, total_epochs

    def __call__(self, epoch: int, batch: int) -> float:
        if epoch == 0:
            return self.peak * (batch + 1) / self.steps
        t = ((epoch - 1) * self.steps + batch) / max(1, (self.total_epochs - 1) * self.steps)
        return self.peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    def in_graph(self):
        """The same curve as a Keras schedule of the optimizer's step counter, for a fixed epoch
        count. It runs inside the compiled train step, so it works where a callback's per-batch
        assignment would not reach it (the JAX backend reads optimizer state once per epoch)."""
        keras = _keras()
        ops = keras.ops
        peak, steps, total = float(self.peak), float(self.steps), float(self.total_epochs)

        class Schedule(keras.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):
                step = ops.cast(step, "float32")
                warm = peak * (step + 1.0) / steps
                t = ops.minimum(1.0, (step - steps) / max(1.0, (total - 1.0) * steps))
                cosine = peak * (0.01 + 0.99 * 0.5 * (1.0 + ops.cos(math.pi * t)))
                return ops.where(step < steps, warm, cosine)

            def get_config(self):
                return {"peak": peak, "steps": steps, "total": total}

        return Schedule()


def predict_probs(model, x: np.ndarray, flip: bool, batch: int = 512) -> np.ndarray:
    """Softmax outputs of the training graph in inference mode; with `flip`, averaged with the
    horizontally mirrored faces (test-time augmentation)."""
    p = model.predict(x, batch_size=batch, verbose=0)
    if flip:
        p = (p + model.predict(x[:, :, ::-1], batch_size=batch, verbose=0)) / 2
    return p


def recalibrate(model, faces: np.ndarray, size: int, args: argparse.Namespace) -> dict:
    """`--pack-bn train`: BatchNorm statistics measured on a seeded sample of `--bn-images` plain
    training faces (`training.batchnorm`), so that BatchNorm can train from the shipped model."""
    from ferlite.training.batchnorm import recalibrate_batchnorm

    prep = training_graph(_keras().Sequential([_keras().layers.Identity()]), size, augment=False, seed=args.seed)
    pick = np.sort(np.random.default_rng(args.seed).permutation(len(faces))[: args.bn_images])
    batches = (prep.predict(faces[pick[i:i + 128], ..., None].astype("float32"), verbose=0)
               for i in range(0, len(pick), 128))
    started = time.perf_counter()
    check = prep.predict(faces[:8, ..., None].astype("float32"), verbose=0)
    layers = recalibrate_batchnorm(model, batches, check=check)
    print(f"  BatchNorm statistics of {layers} layers measured on {len(pick)} faces "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    return {"layers": layers, "faces": len(pick)}


class Job:
    """One model to train. `init_onnx`: start from this shipped model's weights instead (`--init-pack`;
    `weights` is then ignored and BatchNorm stays frozen as the ONNX file folded it, unless
    `--pack-bn train` measures its statistics again)."""

    def __init__(self, name: str, arch: str, size: int, weights: str | None, budget_s: float,
                 epochs: int | None = None, teacher: np.ndarray | None = None, lr: float = 1e-3,
                 head_epochs: int = 4, init_onnx: Path | None = None) -> None:
        self.name, self.arch, self.size, self.weights = name, arch, size, weights
        self.budget_s, self.epochs, self.teacher, self.lr, self.head_epochs = budget_s, epochs, teacher, lr, head_epochs
        self.init_onnx = init_onnx

    @property
    def init(self) -> str:
        return "pack" if self.init_onnx else "imagenet" if self.weights else "none"


def run_job(job: Job, data: dict, args: argparse.Namespace) -> tuple[dict, object]:
    keras = _keras()
    from ferlite.training import models
    from ferlite.training.distill import distillation_loss, targets

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    weights = "none" if job.weights is None or job.init_onnx else job.weights
    model = models.build_model(job.arch, job.size, weights, dropout=args.dropout)
    if job.init_onnx:
        from ferlite.training.onnx_weights import load_onnx_weights

        load_onnx_weights(model, job.init_onnx)
    train_bn_from_pack = job.init_onnx is not None and args.pack_bn == "train"
    recalibrated = recalibrate(model, data["x_train"], job.size, args) if train_bn_from_pack else None
    x_tr = data["x_train"][..., None].astype("float32")
    x_va = data["x_val"][..., None].astype("float32")
    y_tr = keras.utils.to_categorical(data["y_train"], NUM_CLASSES).astype("float32")
    record: dict = {"job": job.name, "architecture": job.arch, "size": job.size,
                    "init": job.init, "distilled": job.teacher is not None}
    if recalibrated:
        record["bn_recalibrated"] = recalibrated
    if job.init_onnx:
        start_acc = accuracy(predict_probs(training_graph(model, job.size, augment=False, seed=args.seed),
                                           x_va, flip=False), data["y_val"])
        record.update(continued_from_file=str(job.init_onnx), init_val_accuracy=start_acc,
                      **continued_from(job.init_onnx.parent))
        print(f"  {job.name}: starts from {job.init_onnx} (validation {start_acc:.4f})", flush=True)

    # Stage 1 (pretrained only): the head on features computed once, as in training/train.py.
    if job.weights is not None and job.head_epochs and not job.init_onnx:
        plain = training_graph(models.feature_extractor(model), job.size, augment=False, seed=args.seed)
        feats = plain.predict(x_tr, batch_size=512, verbose=0)
        head = models.build_head(feats.shape[1], args.dropout)
        head.compile(keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
                     keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing))
        head.fit(feats, y_tr, batch_size=256, epochs=job.head_epochs, verbose=0)
        model.get_layer("probs").set_weights(head.get_layer("probs").get_weights())
        record["stage1_s"] = round(time.perf_counter() - start, 1)

    # Stage 2: every layer. From ImageNet weights BatchNorm stays in inference mode with --freeze-bn
    # (as `ferlite train` does; on FER2013 it overfits less than training-mode BN at lr 1e-3); from
    # scratch it must learn its statistics.
    freeze_bn = args.pack_bn == "frozen" if job.init_onnx else args.freeze_bn and job.weights is not None
    record["freeze_bn"] = freeze_bn
    for layer in model.get_layer(models.BACKBONE_LAYER).layers:
        layer.trainable = not (freeze_bn and isinstance(layer, _keras().layers.BatchNormalization))
    graph = training_graph(model, job.size, augment=args.augment == "graph", seed=args.seed, shift=args.shift,
                           cutout=args.cutout)
    if job.teacher is not None:
        y_fit, loss = targets(y_tr, job.teacher), distillation_loss(
            NUM_CLASSES, args.alpha, args.temperature, args.label_smoothing)
    else:
        y_fit, loss = y_tr, keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
    x_fit, host = x_tr, None
    if args.augment == "host":  # whole batches, a new order and draw each epoch
        from ferlite.training.augment import AugmentConfig

        host = host_batches(x_tr, y_fit, args.batch_size, args.seed, args.host_workers,
                            AugmentConfig(shift=args.shift, cutout=args.cutout))
        record["augment"] = "host"
    elif keras.backend.backend() == "jax":
        # XLA compiles the train step once per batch shape: whole batches only (a seeded draw leaves
        # out fewer than one batch of the ~24k faces), so it compiles once, not twice per job.
        keep = np.random.default_rng(args.seed).permutation(len(x_tr))
        keep = np.sort(keep[: len(x_tr) // args.batch_size * args.batch_size])
        x_fit, y_fit = x_tr[keep], y_fit[keep]
        record["train_images"] = len(keep)
    steps = len(host) if host is not None else math.ceil(len(x_fit) / args.batch_size)
    # A time budget fixes the epoch count once the second epoch is timed (the first includes
    # compiling); until then the schedule is provisionally max_epochs long (near its peak).
    schedule = CosineWithWarmup(job.lr, steps, job.epochs or args.max_epochs)
    # The JAX trainer reads optimizer state once per epoch: a budgeted run there sets the rate at
    # each epoch's start (its value mid-epoch), not per batch.
    per_epoch_lr = not job.epochs and keras.backend.backend() == "jax"
    if job.epochs:  # a fixed epoch count: the schedule lives in the train step (any backend)
        optimizer = keras.optimizers.AdamW(schedule.in_graph(), weight_decay=args.weight_decay)
    else:
        optimizer = keras.optimizers.AdamW(job.lr, weight_decay=args.weight_decay)
    graph.compile(optimizer, loss)
    best = {"val_accuracy": -1.0}
    history: list[dict] = []
    stage2_start = time.perf_counter()
    from ferlite.training.checkpoint import EpochCheckpoint

    progress, first_epoch = EpochCheckpoint(args.out / f"{job.name}.last.npz", f"{job.arch}:{job.size}:{job.init}"), 0
    saved = progress.load(model, optimizer, graph.trainable_variables) if args.resume else None
    if saved:
        first_epoch, history = saved["epoch"], saved["history"]
        schedule.total_epochs = saved["total_epochs"]
        best.update(saved["best"])
        best["weights"] = _best_weights(args.out, job, model)
        stage2_start -= history[-1]["seconds"] if history else 0
        start -= history[-1]["seconds"] if history else 0
        record["resumed_after_epoch"] = first_epoch
        if host is not None:
            host.start_at(first_epoch)
        print(f"  {job.name}: continues after epoch {first_epoch} (best so far {best['val_accuracy']:.4f}, "
              f"epoch {best['epoch']}); --no-resume starts it again", flush=True)

    images_per_epoch = steps * args.batch_size if host is not None else len(x_fit)

    class Control(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.began = epoch, time.perf_counter()
            if per_epoch_lr:
                optimizer.learning_rate.assign(schedule(epoch, steps // 2))

        def on_train_batch_begin(self, batch, logs=None):
            if not job.epochs and not per_epoch_lr:
                optimizer.learning_rate.assign(schedule(self.epoch, batch))

        def on_epoch_end(self, epoch, logs=None):
            train_s = time.perf_counter() - self.began
            probs = predict_probs(graph, x_va, flip=False)
            acc = accuracy(probs, data["y_val"])
            history.append({"epoch": epoch + 1, "loss": float(logs["loss"]), "val_accuracy": acc,
                            "seconds": round(time.perf_counter() - stage2_start, 1),
                            "images_per_s": round(images_per_epoch / train_s)})
            print(f"  {job.name} epoch {epoch + 1}/{schedule.total_epochs} loss {logs['loss']:.4f} "
                  f"val_acc {acc:.4f} lr {float(schedule(epoch + 1, 0)):.2e} at {history[-1]['seconds']} s "
                  f"({images_per_epoch / train_s:,.0f} images/s)", flush=True)
            if acc > best["val_accuracy"]:
                best.update(val_accuracy=acc, epoch=epoch + 1, weights=model.get_weights())
                # A checkpoint: a job killed later (a lent machine's time limit) keeps its best epoch.
                models.save_weights_npz(model, args.out / f"{job.name}.best.weights.npz")
            (args.out / f"{job.name}.progress.json").write_text(json.dumps(
                {**record, "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
                 "history": history}))
            if epoch == 1 and not job.epochs and not saved:  # the first timed epoch without compiling in it
                per_epoch = time.perf_counter() - self.began
                left = job.budget_s - args.final_eval_s - (time.perf_counter() - start)
                schedule.total_epochs = max(3, min(args.max_epochs, 2 + int(left / per_epoch)))
                print(f"  {job.name}: {per_epoch:.1f} s per epoch, {left:.0f} s left of its budget: "
                      f"{schedule.total_epochs} epochs", flush=True)
            progress.save(model, optimizer, epoch + 1, {
                "history": history, "total_epochs": schedule.total_epochs,
                "best": {k: v for k, v in best.items() if k != "weights"}})
            if epoch + 1 >= schedule.total_epochs:
                self.model.stop_training = True

    epochs = min(job.epochs or args.max_epochs, schedule.total_epochs)
    if first_epoch >= epochs:
        pass  # every epoch was done before the interruption: only the final evaluations are left
    elif host is not None:
        graph.fit(host, epochs=epochs, initial_epoch=first_epoch, callbacks=[Control()], verbose=0)
    else:
        graph.fit(x_fit, y_fit, batch_size=args.batch_size, epochs=epochs, initial_epoch=first_epoch, shuffle=True,
                  callbacks=[Control()], verbose=0)
    model.set_weights(best["weights"])
    plain = training_graph(model, job.size, augment=False, seed=args.seed)
    val_plain = predict_probs(plain, x_va, flip=False)
    val_flip = predict_probs(plain, x_va, flip=True)
    use_flip = accuracy(val_flip, data["y_val"]) > accuracy(val_plain, data["y_val"])
    if "x_test" in data:  # the one test evaluation (else it happens after export, on the pack)
        x_te = data["x_test"][..., None].astype("float32")
        test = predict_probs(plain, x_te, flip=use_flip)
        record.update(test_accuracy=accuracy(test, data["y_test"]), test_n=len(x_te))
    record.update(epochs=schedule.total_epochs, best_epoch=best["epoch"],
                  val_accuracy=accuracy(val_plain, data["y_val"]),
                  val_accuracy_flip=accuracy(val_flip, data["y_val"]), flip_tta=bool(use_flip),
                  seconds=round(time.perf_counter() - start, 1), history=history,
                  params=int(model.count_params()))
    print(f"== {job.name}: val {record['val_accuracy']:.4f} (flip {record['val_accuracy_flip']:.4f}) "
          f"test {record.get('test_accuracy', '-')} in {record['seconds']} s, {record['epochs']} epochs", flush=True)
    return record, model


def _best_weights(out: Path, job: Job, model) -> list:
    """The best epoch's weights an interrupted run checkpointed (the model's current ones if none)."""
    from ferlite.training import models

    path = out / f"{job.name}.best.weights.npz"
    return models.read_weights_npz(path) if path.exists() else model.get_weights()


def teacher_probs(teachers: list, data: dict, temperature: float) -> np.ndarray:
    """Flip-averaged ensemble probabilities on the clean training faces, softened, computed once."""
    from ferlite.training.distill import soften

    x_tr = data["x_train"][..., None].astype("float32")
    probs = np.mean([predict_probs(t, x_tr, flip=True) for t in teachers], axis=0)
    return soften(probs, temperature)


def score_teacher(pack: Path, data: dict, archs: list[str], out: Path) -> dict:
    """The students' targets from an earlier pack: each model's flip-averaged probabilities (its
    ONNX file, no calibration) on the training and validation faces; the ensemble (a mean over a
    subset of `archs`) with the best VALIDATION accuracy is written to OUT as raw probabilities on the
    training split, in load_data's order (what --teacher-soft reads)."""
    from ferlite.base.model_metadata import ModelMetadata
    from ferlite.training.distill import choose_ensemble
    from ferlite.training.export import onnx_runner
    from ferlite.training.pack import faces, flip_averaged, on_faces

    probs: dict[str, dict[str, np.ndarray]] = {}
    for arch in archs:
        meta = ModelMetadata.load(pack / arch)
        run = on_faces(onnx_runner(pack / arch / meta.files["onnx"]))
        meta = dataclasses.replace(meta, flip_tta=True)
        probs[arch] = {}
        for split in ("val", "train"):
            began = time.perf_counter()
            pixels = faces(data[f"x_{split}"], data[f"y_{split}"], meta.input_size).pixels
            probs[arch][split] = flip_averaged(run, pixels, meta)
            print(f"  {arch} {split}: {len(pixels):,} faces in {time.perf_counter() - began:.0f} s, accuracy "
                  f"{accuracy(probs[arch][split], data[f'y_{split}']):.4f}", flush=True)
    best, scores = choose_ensemble({a: probs[a]["val"] for a in archs}, data["y_val"])
    for combo, acc in sorted(scores.items(), key=lambda kv: -kv[1]):
        print(f"  validation {acc:.4f}: {' + '.join(combo)}{'  <- chosen' if combo == best else ''}", flush=True)
    teacher = np.mean([probs[a]["train"] for a in best], axis=0).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, teacher)
    note = {"teacher": " + ".join(best), "val_accuracy": scores[best], "flip_averaged": True,
            "train_accuracy": accuracy(teacher, data["y_train"])}
    out.with_suffix(".json").write_text(json.dumps(note, indent=1))
    return note


def _val_test(job: dict) -> str:
    """`val / test` of a training-run job; the test figure only exists where the run had test data."""
    test = job.get("test_accuracy")
    return f"{job['val_accuracy']:.3f} / " + (f"{test:.3f}" if test is not None else "- (see the pack table)")


def ablation_lines(results: dict, ablation: dict) -> list[str]:
    """Each distilled student beside the same architecture trained without the teacher, same epochs."""
    lines = ["", "Distillation ablation (same architecture, input size, epochs and recipe; only the teacher term "
             "differs; figures from the training run: val without flips, test with the flip choice validation "
             "made):", "",
             "| model | with distillation: val / test | without: val / test | epochs |", "|---|---|---|---|"]
    for arch in ("mobilenet_v3_large", "efficientnet_b0"):
        kd, plain = results["jobs"].get(arch), ablation.get("jobs", {}).get(f"{arch}_no_kd")
        if kd and plain:
            lines.append(f"| {arch} | {_val_test(kd)} | {_val_test(plain)} | {kd['epochs']} |")
        elif kd:
            lines.append(f"| {arch} | {_val_test(kd)} | not run | {kd['epochs']} |")
    lines += ["", "ImageNet initialisation ablation (the same architecture, input size, epochs and recipe from random "
              "weights: BatchNorm trained, peak lr of the from-scratch runs; `--ablation-archs` or "
              "`--ablation-scratch`; MobileNetV3-Large and EfficientNetB0 have no ImageNet weights here):", "",
              "| model | ImageNet init: val / test | from scratch: val / test | epochs |", "|---|---|---|---|"]
    for arch in ("mobilenet_v2", "mobilenet_v3_small"):
        pre, scratch = results["jobs"].get(arch), ablation.get("jobs", {}).get(f"{arch}_scratch")
        if pre:
            lines.append(f"| {arch} | {_val_test(pre)} | " + (_val_test(scratch) if scratch else "not run")
                         + f" | {pre['epochs']} |")
    return lines


def selection_lines(results: dict) -> list[str]:
    """The variants each architecture was trained in (a merged run) and the validation figure that picked one."""
    picks = results.get("selection") or {}
    if not picks:
        return []
    lines = ["", "Variants trained side by side, the one with the best validation accuracy kept "
             "(`train_pack.py merge`):",
             "", "| model | variant: validation accuracy |", "|---|---|"]
    for arch, options in picks.items():
        lines.append(f"| {arch} | " + "; ".join(
            f"{o['run']}: {o['val_accuracy']:.4f}" + (" (stopped by the machine's time limit, best epoch so far)"
                                                      if o.get("interrupted") else "") for o in options) + " |")
    return lines


def epochs_sentence(results: dict) -> str:
    fixed = results.get("fixed_epochs") or {}
    budget = results.get("budgets_s") or {}
    if any(fixed.values()):
        return ("epochs fixed per model (" + ", ".join(f"{a} {e or 'from a ' + str(budget.get(a)) + ' s budget'}"
                                                      for a, e in fixed.items()) + "), cosine decay after one warm-up "
                f"epoch; input {results.get('size')} px for the ImageNet-initialised models.")
    return ("per-job time budgets fix the epoch count once the second epoch is timed (the first includes "
            "compiling); a job its machine stopped keeps its best epoch so far.")


def write_benchmark(metas: list, results: dict, ablation: dict | None = None) -> None:
    """benchmarks/results/pack.{md,json}: the model pack's training run beside its served figures."""
    from benchmarks.common import write_results
    from ferlite.training.pack import pack_table, replaced_lines

    rows = []
    for m in metas:
        job = results["jobs"][m.architecture]
        rows.append({"architecture": m.architecture, "size": m.input_size, "init": job["init"],
                     "distilled": job["distilled"], "epochs": job["epochs"], "best_epoch": job["best_epoch"],
                     "train_seconds": job["seconds"], "val_accuracy": m.validation["accuracy"],
                     "test_accuracy": m.test["accuracy"], "test_f1_macro": m.test["f1_macro"],
                     "ck48_accuracy": next(iter(m.cross_dataset.values()))["accuracy"],
                     "temperature": m.temperature, "abstain_below": m.abstain_below, "flip_tta": m.flip_tta})
    where = results.get("machine") or f"Keras on {results.get('backend', '?')}"
    replaced = replaced_lines(results)
    lines = [f"# Model pack: training on FER2013 ({where})", "",
             "Generated by `benchmarks/train_pack.py build` from the `train` run's `results.json`; the figures are "
             "the shipped ONNX files as served. Selection, flips, temperature and threshold on validation; test once.",
             "", *pack_table(metas), "",
             "| model | epochs (best) | train time | flip TTA | temperature | uncertain below |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['architecture']} | {r['epochs']} ({r['best_epoch']}) | {r['train_seconds'] / 60:.0f} min | "
              f"{'yes' if r['flip_tta'] else 'no'} | {r['temperature']:.2f} | {r['abstain_below']:.2f} |" for r in rows]
    lines += ["", f"Recipe: batch {results.get('batch_size')}, peak lr {results.get('lr')} from ImageNet weights "
              f"(BatchNorm frozen: {results.get('freeze_bn')}), {results.get('scratch_lr')} from scratch, AdamW "
              f"(weight decay {results.get('weight_decay')}), label smoothing {results.get('label_smoothing')}, "
              f"distillation alpha {results.get('alpha')} at T={results.get('temperature')}; "
              + epochs_sentence(results), *(["", *replaced] if replaced else []),
              *selection_lines(results), *ablation_lines(results, ablation or {}), ""]
    record = {**results, "jobs": {a: {k: v for k, v in j.items() if k != "history"}
                                  for a, j in results.get("jobs", {}).items()}}
    write_results("pack", {"rows": rows, "recipe": record},
                  "\n".join(lines))


RECIPE_KEYS = ("batch_size", "dropout", "label_smoothing", "weight_decay", "alpha", "temperature", "lr",
               "scratch_lr", "freeze_bn", "shift", "cutout", "augment", "teacher", "backend")
# What a rerun into the same --out must match (resume_conflicts): the recipe less what may change between
# machines (the backend, --augment's implementation) and the teacher, which results.json holds as a note.
RESUME_KEYS = tuple(k for k in RECIPE_KEYS if k not in ("augment", "teacher", "backend"))


def merge(runs: list[Path], out: Path) -> dict:
    """One run folder for `build` from several (parallel processes, or variants of one architecture):
    per architecture, the run whose job has the best VALIDATION accuracy (test is never looked at).
    A job killed before it ended (no results entry) is taken from its best-epoch checkpoint and marked
    interrupted. Each job keeps its own run's recipe; every candidate is listed under "selection"."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    merged: dict = {"jobs": {}, "selection": {}, "merged_from": [str(r) for r in runs]}
    candidates: dict[str, list] = {}
    for run in runs:
        res = json.loads((run / "results.json").read_text()) if (run / "results.json").exists() else {"jobs": {}}
        recipe = {k: res[k] for k in RECIPE_KEYS if k in res}
        for key in ("size", "size_choice", "fixed_epochs"):
            if key in res and key not in merged:
                merged[key] = res[key]
        for progress in run.glob("*.progress.json"):
            name = progress.name.removesuffix(".progress.json")
            job = res["jobs"].get(name)
            weights = run / f"{name}.weights.npz"
            if job is None or not weights.exists():
                p = json.loads(progress.read_text())
                job = {k: v for k, v in p.items() if k not in ("best_val_accuracy",)}
                job.update(val_accuracy=p["best_val_accuracy"], epochs=len(p["history"]), interrupted=True,
                           seconds=p["history"][-1]["seconds"])
                weights = run / f"{name}.best.weights.npz"
            if "architecture" in job and weights.exists():
                candidates.setdefault(job["architecture"], []).append((job, recipe, weights, run))
    for arch, options in candidates.items():
        job, recipe, weights, run = max(options, key=lambda o: o[0]["val_accuracy"])
        merged["jobs"][arch] = {**job, "job": arch, "recipe": recipe, "run": run.name}
        merged["selection"][arch] = [{"run": r.name, "val_accuracy": j["val_accuracy"],  # the job's own BatchNorm
                                      "freeze_bn": j.get("freeze_bn", rc.get("freeze_bn")),  # (from scratch: trained)
                                      "interrupted": j.get("interrupted", False)}
                                     for j, rc, _, r in options]
        shutil.copyfile(weights, out / f"{arch}.weights.npz")
        print(f"== {arch}: {run.name} (val {job['val_accuracy']:.4f}) of "
              + ", ".join(f"{r.name} {j['val_accuracy']:.4f}" for j, _, _, r in options), flush=True)
    # The recipe of the top level is the MobileNetV2 job's (the pack's reference model); the
    # students' teacher comes from theirs.
    first = merged["jobs"].get("mobilenet_v2") or next(iter(merged["jobs"].values()), {})
    merged.update(first.get("recipe", {}))
    teachers = {j["recipe"]["teacher"] for j in merged["jobs"].values() if j.get("recipe", {}).get("teacher")}
    if teachers:
        merged["teacher"] = "; ".join(sorted(teachers))
    save_results(out, merged)
    return merged


def replace(pack: Path, run: Path, arch: str, data_path: Path, record: Path, how: str,
            margin: float = 0.005) -> bool:
    """Swap one architecture of the pack for a later run's model, only if its VALIDATION accuracy (the
    run's, flips as validation chose) beats the shipped model's by at least `margin`; then rebuild the
    folder, the pack's README and benchmarks/results/pack.{md,json}. Test figures are never compared.
    The margin is there because a swap is not free (it re-derives the pack's figures and benchmarks) and
    a gain of a few faces is noise. The standard error of the difference, measured on the 4,306
    validation faces: 0.36 pt between the shipped MobileNetV2 and a fine-tune of it (241 faces right in
    only one of the two), 0.6 pt between the shipped MobileNetV2 and MobileNetV3-Large (668 faces)."""
    import shutil
    import tempfile

    from ferlite.base.model_metadata import ModelMetadata, find_models
    from ferlite.training.pack import add_int8, build_model_folder, pack_record, write_index

    new = json.loads((run / "results.json").read_text())
    job = dict(new["jobs"][arch])
    candidate = job["val_accuracy_flip"] if job.get("flip_tta") else job["val_accuracy"]  # as validation chose
    shipped = ModelMetadata.load(pack / arch).validation["accuracy"]
    print(f"{arch}: validation {shipped:.4f} shipped, {candidate:.4f} in {run}", flush=True)
    if candidate < shipped + margin:
        print(f"{arch}: the shipped model stays (validation decides: the new one needs {shipped + margin:.4f}, "
              f"the shipped model's figure plus --margin {margin})", flush=True)
        return False
    results = pack_record(record)
    job["recipe"] = {k: new[k] for k in RECIPE_KEYS if k in new}
    data = dict(np.load(data_path))
    with tempfile.TemporaryDirectory(dir=pack.parent) as tmp:
        build_model_folder(arch, job, run / f"{arch}.weights.npz", data, Path(tmp), {**results, **job["recipe"]})
        meta = add_int8(Path(tmp) / arch, data)
        shutil.rmtree(pack / arch)
        shutil.move(str(Path(tmp) / arch), pack / arch)
    job["replaced"] = {"old_val_accuracy": shipped, "new_val_accuracy": meta.validation["accuracy"], "how": how}
    results["jobs"][arch] = job  # (write_benchmark keeps it without its per-epoch history)
    results.setdefault("selection", {}).setdefault(arch, []).append(
        {"run": f"{run.name} (retrained later)", "val_accuracy": job["val_accuracy"], "freeze_bn": new.get("freeze_bn"),
         "interrupted": False})
    metas = find_models(pack)
    write_index(pack, metas, results)
    write_benchmark(metas, results)
    print(f"{arch}: replaced; served validation {meta.validation['accuracy']:.4f}, test {meta.test['accuracy']:.4f}",
          flush=True)
    return True


def continued_from(folder: Path) -> dict:
    """What a job continued from a pack model records: that model's own initialisation (a model
    continued from a from-scratch one is still from scratch) and a line for its model card."""
    from ferlite.base.model_metadata import ModelMetadata

    meta = ModelMetadata.load(folder)
    first = "imagenet" if str(meta.training.get("init", "")).startswith("ImageNet") else "none"
    before = meta.training.get("continued_from")
    return {"init": first, "continued_from": f"the earlier pack's model ({meta.training.get('epochs')} epochs, "
                                             f"validation {meta.validation['accuracy']:.3f} as served"
                                             + (f"; it had continued from {before}" if before else "") + ")"}


def pack_onnx(pack: Path | None, arch: str, size: int) -> Path | None:
    """`--init-pack`'s model of `arch` (its float ONNX file), checked to take `size` px."""
    if pack is None:
        return None
    from ferlite.base.model_metadata import ModelMetadata

    meta = ModelMetadata.load(pack / arch)
    if meta.input_size != size:
        raise SystemExit(f"--init-pack: {pack / arch} takes {meta.input_size} px, this job {size} px (--size)")
    return pack / arch / meta.files["onnx"]


def save_results(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1))


def resume(arch: str, out: Path, results: dict, args: argparse.Namespace):
    """The model an earlier (interrupted) run of this command finished, or None: a rerun skips the
    jobs whose results and weights are both on disk, so a killed run loses at most one job."""
    from ferlite.training import models

    rec, path = results["jobs"].get(arch), out / f"{arch}.weights.npz"
    if not rec or "val_accuracy" not in rec or not path.exists():  # (test is only in a run with test data)
        return None
    model = models.build_model(arch, rec["size"], "none", dropout=args.dropout)
    models.load_weights_npz(model, path)
    print(f"== {arch}: kept from an earlier run (--no-resume trains it again)", flush=True)
    return model


def resume_conflicts(recorded: dict, settings: dict) -> list[str]:
    """The settings that differ from those an earlier run into the same --out recorded. Resuming keeps
    finished jobs and continues interrupted ones from their checkpoints, whose keys name the job, not
    these: without the check, rerunning with the other --pack-bn, another --lr, --shift or --cutout would
    silently continue (or keep) the other run's model under this run's record. The backend and the
    augmentation's implementation (--augment) may change: a job cut short on a lent GPU continues here."""
    return [f"{k} {recorded[k]} there, {v} here" for k, v in settings.items()
            if k in recorded and recorded[k] != v]


def train(args: argparse.Namespace) -> None:
    from ferlite.training import models

    if _keras().backend.backend() == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}", flush=True)
    elif _keras().backend.backend() == "jax":
        import jax

        print(f"jax {jax.__version__}, devices {jax.devices()}", flush=True)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"jobs": {}}
    settings = {k: getattr(args, k) for k in RESUME_KEYS}
    settings["freeze_bn"] = args.pack_bn == "frozen" if args.init_pack else args.freeze_bn
    if args.resume and (changed := resume_conflicts(results, settings)):
        raise SystemExit(f"{out} holds a run trained with other settings ({'; '.join(changed)}): its jobs would "
                         "be kept or continued as if they were this run's. Use a new --out, or --no-resume.")
    data = load_data(args.data, args.limit)
    results.update(backend=_keras().backend.backend(), augment=args.augment, **settings)
    save_results(out, results)  # before the first job, so a rerun checks an interrupted first job too
    jobs = args.jobs.split(",")
    wfile = {a: str(args.weights_dir / f) for a, f in WEIGHT_FILES.items()}
    size = args.size
    if "sweep" in jobs:
        for s in args.sizes:
            rec, _ = run_job(Job(f"sweep_mobilenet_v2_{s}", "mobilenet_v2", s, wfile["mobilenet_v2"],
                                 args.sweep_budget, epochs=args.sweep_epochs), data, args)
            results["jobs"][rec["job"]] = rec
            save_results(out, results)
        sweep = {s: results["jobs"][f"sweep_mobilenet_v2_{s}"]["val_accuracy"] for s in args.sizes}
        top = max(sweep.values())
        size = min(s for s, v in sweep.items() if v >= top - args.size_tolerance)
        results["size_choice"] = {"val_accuracy": sweep, "tolerance": args.size_tolerance, "chosen": size}
        save_results(out, results)
        print(f"== size chosen on validation: {size}", flush=True)
    size = size or results.get("size_choice", {}).get("chosen") or 96
    results["size"] = size
    budgets = dict(zip(("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"),
                       args.budgets, strict=True))
    if "pack" in jobs:
        # Scale the budgets to what is left of --deadline-s (the training machine's time limit).
        left = args.deadline_s - (time.perf_counter() - T0) - 30
        planned = sum(budgets.values())
        if "ablation" in jobs:  # the students again, without distillation, at the same epochs
            planned += budgets["mobilenet_v3_large"] + budgets["efficientnet_b0"]
        scale = min(1.0, left / planned)
        budgets = {a: b * scale for a, b in budgets.items()}
        results["budgets_s"] = {a: round(b) for a, b in budgets.items()}
        epochs = dict(zip(budgets, args.epochs or [0, 0, 0, 0], strict=True))
        results["fixed_epochs"] = epochs
        archs = args.archs.split(",") if args.archs else list(budgets)
        teachers = []
        given = None
        if args.teacher_soft:
            # Targets scored earlier (e.g. by a previous pack, so that students can train beside the
            # teachers on one lent machine): raw probabilities on the training split, in load_data's order.
            from ferlite.training.distill import soften

            raw = np.load(args.teacher_soft)
            if not args.limit and len(raw) != len(data["x_train"]):
                raise SystemExit(f"{args.teacher_soft}: {len(raw)} rows, the training split has {len(data['x_train'])}")
            given = soften(raw[data.get("rows_train", slice(None))], args.temperature)
            results["teacher"] = args.teacher_note or str(args.teacher_soft)
        for arch in ("mobilenet_v2", "mobilenet_v3_small"):
            if arch not in archs:
                continue
            model = resume(arch, out, results, args) if args.resume else None
            if model is None:
                if args.distill_pretrained and given is None:
                    raise SystemExit("--distill-pretrained needs --teacher-soft")
                rec, model = run_job(Job(arch, arch, size, wfile[arch], budgets[arch], epochs=epochs[arch] or None,
                                         lr=args.lr, teacher=given if args.distill_pretrained else None,
                                         init_onnx=pack_onnx(args.init_pack, arch, size)), data, args)
                results["jobs"][arch] = rec
                save_results(out, results)
                models.save_weights_npz(model, out / f"{arch}.weights.npz")
            teachers.append(training_graph(model, size, augment=False, seed=args.seed))
        students = [a for a in ("mobilenet_v3_large", "efficientnet_b0") if a in archs]
        if students and given is not None:
            soft = given
        elif students:
            if len(teachers) < 2:
                raise SystemExit("distilled students need both teachers in --archs, or --teacher-soft")
            soft = teacher_probs(teachers, data, args.temperature)
            np.save(args.cache / "teacher_soft.npy", soft)  # kept for reruns, not part of the results
            results["teacher"] = "MobileNetV2 + MobileNetV3-Small of this run, flip-averaged"
        for arch in students:
            if args.resume and resume(arch, out, results, args) is not None:
                continue
            student = args.student_size or size
            init = pack_onnx(args.init_pack, arch, student)
            rec, model = run_job(Job(arch, arch, student, None, budgets[arch], teacher=soft,
                                     epochs=epochs[arch] or None, lr=args.lr if init else args.scratch_lr,
                                     init_onnx=init), data, args)
            results["jobs"][arch] = rec
            save_results(out, results)
            models.save_weights_npz(model, out / f"{arch}.weights.npz")
    reference = json.loads(args.reference.read_text()) if args.reference else {}
    if "ablation" in jobs:
        archs = tuple(args.ablation_archs.split(","))
        if args.ablation_scratch:
            archs += ("mobilenet_v2", "mobilenet_v3_small")
        for arch in archs:
            ref = reference.get("jobs", {}).get(arch) or results["jobs"].get(arch, {})
            epochs = ref.get("epochs") or args.ablation_epochs
            name = f"{arch}_{'no_kd' if arch in ('mobilenet_v3_large', 'efficientnet_b0') else 'scratch'}"
            if args.resume and name in results["jobs"] and (out / f"{name}.weights.npz").exists():
                print(f"== {name}: kept from an earlier run (--no-resume trains it again)", flush=True)
                continue
            student = ref.get("size") or args.student_size or size
            rec, model = run_job(Job(name, arch, student, None, 1e9, epochs=epochs, lr=args.scratch_lr), data, args)
            results["jobs"][name] = rec
            save_results(out, results)
            models.save_weights_npz(model, out / f"{name}.weights.npz")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare", help="write the data file the train step reads")
    pr.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    pr.add_argument("--out", type=Path, default=ROOT / ".pack" / "fer2013.npz")
    t = sub.add_parser("train", help="run the training jobs")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--weights-dir", type=Path, default=ROOT.parent / "shared" / "weights")
    t.add_argument("--out", type=Path, default=ROOT / "runs" / "pack")
    t.add_argument("--jobs", default="sweep,pack")
    t.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[96, 128, 160])
    t.add_argument("--size", type=int, default=0, help="model input size when no sweep runs")
    t.add_argument("--student-size", type=int, default=0, help="input size of the distilled students (0: --size)")
    t.add_argument("--size-tolerance", type=float, default=0.005,
                   help="the smallest size within this validation accuracy of the best wins (serving cost)")
    t.add_argument("--sweep-epochs", type=int, default=3)
    t.add_argument("--sweep-budget", type=float, default=90)
    t.add_argument("--budgets", type=lambda s: [float(v) for v in s.split(",")], default=[150, 90, 110, 120],
                   help="seconds for mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0")
    t.add_argument("--epochs", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="fixed epoch counts for the four models, in --budgets order (0: from the budget); "
                        "a fixed count makes a run reproducible on a busy machine")
    t.add_argument("--archs", default="", help="pack job: only these architectures (comma-separated; "
                   "default all four). Parallel processes on one GPU each take one, with their own --out")
    t.add_argument("--teacher-soft", type=Path, help="pack job: the students' teacher as a .npy of raw "
                   "probabilities on the training split (load_data's order) instead of this run's teachers")
    t.add_argument("--distill-pretrained", action="store_true",
                   help="pack job: the ImageNet-initialised models learn from --teacher-soft too")
    t.add_argument("--init-pack", type=Path, help="pack job: start each model from this pack's model of its "
                   "architecture (its ONNX file) instead of ImageNet or random weights, and continue it at --lr "
                   "with BatchNorm frozen (the ONNX file keeps it folded into the convolutions) unless --pack-bn train")
    t.add_argument("--pack-bn", choices=["frozen", "train"], default="frozen",
                   help="--init-pack: keep BatchNorm as the pack folded it, or measure its statistics on "
                        "--bn-images training faces and train it (training.batchnorm)")
    t.add_argument("--bn-images", type=int, default=2048, help="--pack-bn train: faces to measure BatchNorm on")
    t.add_argument("--teacher-note", default="", help="what --teacher-soft is, for results.json and the cards")
    t.add_argument("--shift", type=float, default=0.0, help="augmentation: random shift, ± fraction of the size")
    t.add_argument("--cutout", type=float, default=0.0, help="augmentation: probability that a face gets one "
                   "rectangle of noise (random erasing, 2-20 %% of its area) [off]")
    t.add_argument("--final-eval-s", type=float, default=20.0,
                   help="seconds a budgeted job keeps for its last evaluations after training")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip the jobs an earlier run into the same --out finished and continue an interrupted "
                        "one from its last finished epoch")
    t.add_argument("--max-epochs", type=int, default=60)
    t.add_argument("--ablation-epochs", type=int, default=20)
    t.add_argument("--ablation-archs", default="mobilenet_v3_large,efficientnet_b0",
                   help="students trained again without distillation")
    t.add_argument("--ablation-scratch", action="store_true",
                   help="ablation also trains MobileNetV2 and MobileNetV3-Small from scratch")
    t.add_argument("--lr", type=float, default=2e-4, help="peak learning rate from ImageNet weights")
    t.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="keep BatchNorm in inference mode when fine-tuning ImageNet weights")
    t.add_argument("--augment", choices=["graph", "host"], default="graph",
                   help="graph: Keras layers in the train step (CPU); host: OpenCV per batch before it (GPU)")
    t.add_argument("--host-workers", type=int, default=4, help="threads preparing host-augmented batches")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--dropout", type=float, default=0.3)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--scratch-lr", type=float, default=2e-3)
    t.add_argument("--alpha", type=float, default=0.5, help="weight of the hard-label term in distillation")
    t.add_argument("--temperature", type=float, default=2.0)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--cache", type=Path, default=Path("/tmp"), help="where the teacher's soft targets are kept")
    t.add_argument("--deadline-s", type=float, default=1e9, help="scale the pack budgets to end before this")
    t.add_argument("--reference", type=Path, help="an earlier results.json: ablations use its epoch counts")
    t.add_argument("--limit", type=int, default=0, help="N images of each split, drawn at random (a smoke test)")
    s = sub.add_parser("teacher", help="score an earlier pack's models on the training split: the ensemble "
                       "validation picks, written as --teacher-soft's .npy")
    s.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    s.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz", help="prepare's decoded file")
    s.add_argument("--archs", default="mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0")
    s.add_argument("--out", type=Path, default=ROOT / ".pack" / "teacher_train.npy")
    x = sub.add_parser("replace", help="swap one model of the pack for a later run's, only if validation prefers it "
                       "(rebuilds its folder, the pack README and benchmarks/results/pack.md)")
    x.add_argument("--run", type=Path, required=True, help="the later train run's --out")
    x.add_argument("--arch", required=True)
    x.add_argument("--how", required=True, help="one line on how the new model was trained, for the README")
    x.add_argument("--margin", type=float, default=0.005,
                   help="validation accuracy the new model must gain over the shipped one (default half a point: "
                        "about one standard error of the difference between two models: 0.36 to 0.6 pt on the pack)")
    x.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    x.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz", help="prepare's decoded file")
    x.add_argument("--record", type=Path, default=PACK_RECORD,
                   help="the pack's training record")
    b = sub.add_parser("build", help="export a train run as the model pack (ONNX, TFLite, metadata, cards)")
    b.add_argument("--run", type=Path, default=ROOT / "runs" / "pack", help="the train step's --out")
    b.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz", help="prepare's decoded file")
    b.add_argument("--out", type=Path, default=ROOT / "modelpack")
    b.add_argument("--limit", type=int, default=0, help="N images of each split, drawn at random (a smoke test)")
    b.add_argument("--ablation", type=Path, default=ROOT / "runs" / "pack-ablation",
                   help="the ablation run's --out, reported beside the pack when present")
    m = sub.add_parser("merge", help="one run folder from several (per architecture: the best validation "
                       "accuracy), for build")
    m.add_argument("--runs", type=Path, nargs="+", required=True)
    m.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("refresh", help="bring a pack built by an earlier build up to this one's metadata (colour, "
                       "parameter counts, the paper's five-class figures), then rewrite its README and results")
    f.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    f.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz", help="prepare's decoded file")
    f.add_argument("--run", type=Path, default=ROOT / "runs" / "pack", help="the train run the pack came from")
    r = sub.add_parser("report", help="only rewrite benchmarks/results/pack.md and the pack's README from a "
                       "built pack and its run")
    r.add_argument("--run", type=Path, default=ROOT / "runs" / "pack",
                   help="the train run (without one: the record in benchmarks/results/pack.json)")
    r.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    r.add_argument("--ablation", type=Path, default=ROOT / "runs" / "pack-ablation")
    q = sub.add_parser("quantize", help="add (or redo) each pack model's int8 ONNX file, kept only where its "
                       "validation accuracy is within 0.5 pt of float; `build` already does this")
    q.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    q.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz", help="prepare's decoded file")
    q.add_argument("--archs", default="", help="comma-separated architectures [all in the pack]")
    c = sub.add_parser("calibrate", help="fit each pack model's int8 file's own temperature and abstention "
                       "threshold on validation, without quantising again; `quantize` and `build` already do this")
    c.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    c.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz", help="prepare's decoded file")
    args = p.parse_args()
    if args.cmd == "calibrate":
        from ferlite.base.model_metadata import find_models
        from ferlite.training.pack import calibrate_file

        data = dict(np.load(args.data))
        for meta in find_models(args.pack):
            name = meta.files.get("onnx_int8")
            if not name:
                continue
            own = calibrate_file(args.pack / meta.architecture, name, data).file_calibration[name]
            print(f"{meta.architecture} {name}: T {own['temperature']:.3f} (float {meta.temperature:.3f}), uncertain "
                  f"below {own['abstain_below']:.2f} (float {meta.abstain_below:.2f}); ECE {own['ece']:.4f}, with "
                  f"the float temperature {own['ece_with_float_temperature']:.4f}", flush=True)
        return 0
    if args.cmd == "quantize":
        from ferlite.base.model_metadata import find_models
        from ferlite.training.pack import add_int8

        data = dict(np.load(args.data))
        wanted = set(filter(None, args.archs.split(",")))
        for meta in find_models(args.pack):
            if wanted and meta.architecture not in wanted:
                continue
            c = add_int8(args.pack / meta.architecture, data).checks["onnx_int8"]
            print(f"{meta.architecture}: int8 val {c['val_accuracy_int8']:.4f} vs float {c['val_accuracy_float']:.4f}"
                  f" -> {'kept' if c['kept'] else 'rejected: ' + c.get('rejected', '')}", flush=True)
        return 0
    if args.cmd == "refresh":
        from ferlite.base.model_metadata import find_models
        from ferlite.training.pack import refresh, write_index

        data = dict(np.load(args.data))
        for meta in find_models(args.pack):
            m = refresh(args.pack / meta.architecture, data)
            five = m.test["paper_classes"]
            print(f"{m.architecture}: colour {m.colour}, {m.extra['params']:,} parameters, five classes: accuracy "
                  f"{five['accuracy']:.4f}, macro F1 {five['f1_macro']:.4f}", flush=True)
        results = json.loads((args.run / "results.json").read_text())
        metas = find_models(args.pack)
        write_index(args.pack, metas, results)
        write_benchmark(metas, results)
        return 0
    if args.cmd == "report":
        from ferlite.base.model_metadata import find_models
        from ferlite.training.pack import pack_record, write_index

        ablation = args.ablation / "results.json"
        run = args.run / "results.json"
        metas = find_models(args.pack)
        results = json.loads(run.read_text()) if run.exists() else pack_record(PACK_RECORD)
        write_index(args.pack, metas, results)  # first: it measures the folders the table's sizes come from
        write_benchmark(metas, results, json.loads(ablation.read_text()) if ablation.exists() else None)
        return 0
    if args.cmd == "replace":
        replace(args.pack, args.run, args.arch, args.data, args.record, args.how, args.margin)
        return 0
    if args.cmd == "teacher":
        note = score_teacher(args.pack, dict(np.load(args.data)), args.archs.split(","), args.out)
        print(json.dumps(note, indent=1))
        return 0
    if args.cmd == "merge":
        merge(args.runs, args.out)
        return 0
    if args.cmd == "prepare":
        prepare(args.data_root, args.out)
    elif args.cmd == "build":
        from ferlite.training.pack import build_pack

        metas = build_pack(args.run, args.data, args.out, args.limit)
        if not args.limit:
            ablation = args.ablation / "results.json"
            write_benchmark(metas, json.loads((args.run / "results.json").read_text()),
                            json.loads(ablation.read_text()) if ablation.exists() else None)
    else:
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
