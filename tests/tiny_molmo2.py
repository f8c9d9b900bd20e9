"""A tiny, offline Molmo2Processor for tests: real transformers classes, nothing downloaded.

One job: build a ``Molmo2Processor`` the way ../shared/reference/molmo2-model.md ("Tokenizer built
offline", "What the processor does") describes it, small enough for a CPU test session:

* a byte-level BPE trained here with ``tokenizers`` on a few sentences, with ``<|endoftext|>``,
  ``<|im_start|>`` and ``<|im_end|>`` inside the text vocabulary (ids 0, 1, 2), then Molmo 2's ten
  visual special tokens added in the released order (ids ``n_text`` .. ``n_text + 9``), wrapped in
  ``PreTrainedTokenizerFast`` (eos ``<|im_end|>``, pad ``<|endoftext|>``, no BOS: the processor
  then prepends the eos, as with the released tokenizer);
* ``Molmo2ImageProcessor`` / ``Molmo2VideoProcessor`` built directly with 56 px crops, patch 14,
  mean/std 0.5, ``do_rescale`` and ``do_normalize`` set (left at None they feed raw 0-255 pixels),
  and ``do_sample_frames=False`` so the frames given are the frames used.

The trainer tests can reuse ``build_processor`` / ``special_token_ids`` (tests/conftest.py has
the session fixture ``tiny_molmo2_processor``, built with the shipped chat template).
"""
from __future__ import annotations

from typing import Optional

__all__ = ["TEXT_SPECIALS", "VISUAL_SPECIALS", "CROP_PX", "PATCH_PX", "build_tokenizer", "build_processor",
           "special_token_ids"]

TEXT_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Qwen3's chat tokens: ordinary ids inside the text vocabulary."""
VISUAL_SPECIALS = ("<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<low_res_im_start>", "<|image|>",
                   "<im_low>", "<frame_start>", "<frame_end>", "<|video|>")
"""Molmo 2's visual tokens, in the released order (151936-151945 in the released models)."""
CROP_PX = 56
PATCH_PX = 14
_VOCAB_SIZE = 400
_CORPUS = (
    "Point to every penguin in the video. There are 3 penguins.",
    "Counting the red circles shows a total of 2. Track the blue square.",
    "Describe this video. A green diamond moves from the left to the right.",
    "Which option is correct? A. yes B. no C. maybe D. never Answer: B.",
    "subtitle 0.0 - 1.5 Hello there, 1.5 - 3.0 wörld & friends 東京",
    "<points coords=\"0.5 1 100 200;2.0 2 305 400\">penguin</points> 0123456789",
    "<tracks coords=\"0.0 1 078 417 2 156 208;0.5 1 094 396\">person</tracks>",
    "Image 1 Image 2 Image 3 How many cups are there in these images?",
)


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` with the Qwen3 chat tokens and Molmo 2's visual tokens.

    Returns:
        The tokenizer; ``len(tokenizer)`` is the text vocabulary plus 10.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=_VOCAB_SIZE, special_tokens=list(TEXT_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    bpe.add_special_tokens(list(VISUAL_SPECIALS))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def special_token_ids(tokenizer) -> dict[str, int]:
    """Ids of the chat and visual special tokens (for a model config's ``image_patch_id`` etc.)."""
    return {tok: tokenizer.convert_tokens_to_ids(tok) for tok in TEXT_SPECIALS + VISUAL_SPECIALS}


def build_processor(chat_template: Optional[str] = None):
    """A tiny ``Molmo2Processor``: the tokenizer above, 56 px crops, no frame sampling.

    Args:
        chat_template: Jinja text given to the processor (None: none, as transformers ships).

    Returns:
        The processor.
    """
    from transformers import Molmo2ImageProcessor, Molmo2Processor, Molmo2VideoProcessor

    size = {"height": CROP_PX, "width": CROP_PX}
    norm = {"do_rescale": True, "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    image_processor = Molmo2ImageProcessor(size=size, patch_size=PATCH_PX, max_crops=2, overlap_margins=[1, 1],
                                           pooling_size=[2, 2], **norm)
    video_processor = Molmo2VideoProcessor(size=size, patch_size=PATCH_PX, pooling_size=[3, 3],
                                           do_sample_frames=False, **norm)
    return Molmo2Processor(image_processor=image_processor, video_processor=video_processor,
                           tokenizer=build_tokenizer(), chat_template=chat_template,
                           use_single_crop_col_tokens=False)
