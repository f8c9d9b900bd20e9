"""A tiny Molmo 2, built offline: tokenizer, image and video processors, processor and model config.

One job: write a folder that looks like a released Molmo 2 checkpoint folder (``config.json``,
tokenizer and processor files; weights only when asked) for a model small enough to train on a
CPU in tests and in ``make demo``. Configs then point at it exactly as they point at real weights
(``model.path``), so nothing downloads anything.

What is built, and why (facts in ``../shared/reference/molmo2-model.md``):

* Tokenizer: a byte-level BPE trained here with ``tokenizers`` on a small embedded corpus; the
  chat tokens ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` sit inside the text vocabulary
  (as in Qwen 3), then Molmo 2's ten visual tokens are added in the released order on the
  ``tokenizers.Tokenizer`` itself, so they get ids ``n_text .. n_text + 9`` (151936-151945 in the
  released models) above ``text_config.vocab_size``, where the LM head has no output. Wrapped in
  ``PreTrainedTokenizerFast`` with eos ``<|im_end|>`` and pad ``<|endoftext|>``; no BOS, so the
  processor prepends the eos as the released tokenizer does.
* Processors: 56 px crops of 14 px patches (the crop size must equal ``vision_config.image_size``),
  image pooling 2x2, video pooling 3x3, ``overlap_margins`` [1, 1] (28 px crops with margins fail),
  mean/std 0.5 like the released preprocessor, ``do_rescale``/``do_normalize`` set explicitly (a
  video processor built directly leaves them unset: raw 0-255 pixels), and ``do_sample_frames``
  off: the frames given are the frames used.
* Model config: 2 text layers of width 64, 2 ViT layers of width 32, token ids matching the
  tokenizer (a wrong ``image_patch_id`` fails with "Image features and image tokens do not match").
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TOKENS", "VISUAL_TOKENS", "TINY_CROP", "build_tokenizer", "build_processor",
    "build_config", "save_tiny", "ensure_tiny",
]

CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""In the text vocabulary (ids below ``vocab_size``), like Qwen 3's."""
VISUAL_TOKENS = ("<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<low_res_im_start>", "<|image|>",
                 "<im_low>", "<frame_start>", "<frame_end>", "<|video|>")
"""Molmo 2's added tokens in the released order (151936 + i in the released models)."""
TINY_CROP = 56
"""Crop side in pixels: 4 x 4 patches of 14 px."""
TINY_VERSION = 2
"""Bumped whenever what ``save_tiny`` writes changes; ``ensure_tiny`` rebuilds older folders."""

# Text the tokenizer is trained on: the chat layout, the point/track/count answer forms and
# plain words, so the tiny model's sequences are a few hundred tokens, not thousands of bytes.
_CORPUS_WORDS = (
    "user assistant What is in the video? Describe the clip in detail. Point to the Count the "
    "How many are there? Track every There are none. Counting the shows a total of Answer: "
    "The person walks to the left and picks up a red ball, then the blue square moves right. "
    "circle square triangle star car dog cat person ball box green yellow purple orange white black "
    "Image frame frames time second seconds subtitle caption question answer which option "
    "A. B. C. D. E. true false yes no moving entering leaving occluded appears disappears "
    "<points coords=\"0.5 1 100 200 2 305 400;2.0 3 550 600\">penguin</points> "
    "<tracks coords=\"0.0 1 078 417 2 156 208;0.5 1 094 396\">person</tracks> "
    "<point x=\"10.5\" y=\"20.3\" alt=\"dog\">dog</point> "
)


def _corpus() -> list[str]:
    lines = [_CORPUS_WORDS]
    for i in range(0, 1001, 7):
        lines.append(f"{i:03d} {i / 10:.1f} {i} ")
    for style in ("video_point", "video_count", "video_short_answer", "multi_image_pointing", "user_qa"):
        lines.append(f"<|im_start|>user\n{style}: What is shown?<|im_end|>\n<|im_start|>assistant\nIt is.<|im_end|>\n")
    return lines


def build_tokenizer(vocab_size: int = 512) -> Any:
    """Train the tiny byte-level BPE tokenizer and wrap it for transformers.

    Args:
        vocab_size: target size of the text vocabulary (chat tokens included).

    Returns:
        A ``PreTrainedTokenizerFast`` whose text vocabulary has ``n_text`` ids and whose ten
        Molmo 2 visual tokens are ``n_text .. n_text + 9`` in the released order.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen 2/3's pre-tokenizer: the split regex, then byte-level mapping without its own regex.
    split = Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(split, behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(CHAT_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    n_text = tok.get_vocab_size()
    tok.add_special_tokens(list(VISUAL_TOKENS))
    ids = [tok.token_to_id(t) for t in VISUAL_TOKENS]
    if ids != list(range(n_text, n_text + len(VISUAL_TOKENS))):  # pragma: no cover - tokenizers contract
        raise RuntimeError(f"visual token ids {ids} are not {n_text}..{n_text + 9}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=list(CHAT_TOKENS[1:]) + list(VISUAL_TOKENS),
                                   model_max_length=65536)


def build_processor(tokenizer: Any, crop: int = TINY_CROP, max_crops: int = 2,
                    overlap_margins: tuple[int, int] = (1, 1)) -> Any:
    """The ``Molmo2Processor`` of the tiny model (images and videos).

    Args:
        tokenizer: from ``build_tokenizer`` (or any tokenizer carrying the Molmo 2 tokens).
        crop: crop side in pixels; must equal the vision config's ``image_size`` (378 with
            ``max_crops=8`` and ``overlap_margins=(4, 4)`` are the released settings).
        max_crops: high-resolution crops per image.
        overlap_margins: overlap of neighbouring crops, in patches.

    Returns:
        The processor; frame sampling is off (``do_sample_frames=False``).
    """
    from transformers import Molmo2ImageProcessor, Molmo2Processor, Molmo2VideoProcessor

    common = dict(size={"height": crop, "width": crop}, patch_size=14, image_mean=[0.5] * 3,
                  image_std=[0.5] * 3, do_rescale=True, do_normalize=True)
    image = Molmo2ImageProcessor(max_crops=max_crops, overlap_margins=list(overlap_margins), pooling_size=[2, 2],
                                 **common)
    video = Molmo2VideoProcessor(pooling_size=[3, 3], do_sample_frames=False, max_fps=2, num_frames=128,
                                 **common)
    return Molmo2Processor(image_processor=image, video_processor=video, tokenizer=tokenizer,
                           use_single_crop_col_tokens=False)


def build_config(tokenizer: Any, crop: int = TINY_CROP) -> Any:
    """The tiny ``Molmo2Config`` whose token ids match ``tokenizer``.

    Args:
        tokenizer: from ``build_tokenizer``.
        crop: the processor's crop side in pixels.

    Returns:
        A ``Molmo2Config`` (about 0.2M parameters; ``vocab_size`` = the text vocabulary).
    """
    from transformers import Molmo2Config

    n_text = tokenizer.convert_tokens_to_ids("<im_start>")
    ids = dict(zip(VISUAL_TOKENS, tokenizer.convert_tokens_to_ids(list(VISUAL_TOKENS))))
    text = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=n_text,
                additional_vocab_size=16, num_hidden_layers=2, intermediate_size=128,
                max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, head_dim=16, image_size=[crop, crop], patch_size=14)
    adapter = dict(vision_feature_layer=[-1, -2], hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
                   head_dim=16, intermediate_size=64, text_hidden_size=64)
    return Molmo2Config(text_config=text, vision_config=vision, adapter_config=adapter,
                        image_start_token_id=ids["<im_start>"], image_end_token_id=ids["<im_end>"],
                        low_res_image_start_token_id=ids["<low_res_im_start>"], image_patch_id=ids["<im_patch>"],
                        frame_start_token_id=ids["<frame_start>"], frame_end_token_id=ids["<frame_end>"],
                        tie_word_embeddings=False)


def save_tiny(path: str | os.PathLike, with_weights: bool = False, seed: int = 0) -> Path:
    """Write the tiny model folder (config, tokenizer, processor; weights when asked), atomically.

    Args:
        path: the folder to create (its parent must be writable); replaced if it exists.
        with_weights: also save randomly initialized weights (seeded), so the folder loads with
            ``from_pretrained`` like a released checkpoint.
        seed: torch seed of the weight initialization.

    Returns:
        The folder path.
    """
    import shutil
    import tempfile

    import torch
    from transformers import Molmo2ForConditionalGeneration
    from transformers.utils import logging

    from schemas.chat import chat_template

    logging.disable_progress_bar()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        tokenizer = build_tokenizer()
        processor = build_processor(tokenizer)
        processor.chat_template = chat_template()  # the released layout, for inference and export
        config = build_config(tokenizer)
        processor.save_pretrained(stage)
        if with_weights:
            torch.manual_seed(seed)
            Molmo2ForConditionalGeneration(config).save_pretrained(stage)
        else:
            config.save_pretrained(stage)
        (stage / "tiny.json").write_text(json.dumps({"tiny_version": TINY_VERSION, "weights": with_weights}))
        if path.exists():
            shutil.rmtree(path)
        os.replace(stage, path)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return path


def ensure_tiny(path: str | os.PathLike, with_weights: bool = False) -> Path:
    """Build the tiny folder at ``path`` unless a current one is already there.

    Args:
        path: the folder.
        with_weights: whether weights must be present.

    Returns:
        The folder path.
    """
    path = Path(path)
    marker = path / "tiny.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("tiny_version") == TINY_VERSION and (info.get("weights") or not with_weights):
            return path
    return save_tiny(path, with_weights=with_weights)
