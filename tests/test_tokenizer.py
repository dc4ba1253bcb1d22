"""The CLIP tokenizer built offline from the bundled BPE file is OpenAI's."""

from ideaforge.tools.clip_tokenizer import count_tokens, load_clip_tokenizer, write_clip_tokenizer


def test_vocabulary_and_ids_match_openai_clip(clip_tokenizer) -> None:
    assert len(clip_tokenizer) == 49408
    assert clip_tokenizer.model_max_length == 77
    # Known ids of openai/clip-vit-base-patch32: <|startoftext|>=49406, a=320, red=736, kitten=13063.
    assert clip_tokenizer("a red kitten")["input_ids"] == [49406, 320, 736, 13063, 49407]


def test_count_includes_bos_and_eos(clip_tokenizer) -> None:
    assert count_tokens("", clip_tokenizer) == 2
    assert count_tokens("cat", clip_tokenizer) == 3
    assert count_tokens("一只红色小猫", clip_tokenizer) > 6  # byte-level BPE: CJK costs several tokens


def test_written_folder_loads_back(tmp_path) -> None:
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer(tmp_path / "tok")
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
    assert tok("a red kitten")["input_ids"] == load_clip_tokenizer()("a red kitten")["input_ids"]


def test_counts_are_remembered_per_tokenizer_never_across(clip_tokenizer) -> None:
    from tests.tiny_models import _t5_tokenizer

    t5 = _t5_tokenizer()
    text = "a red kitten sitting in a wicker basket"
    clip_n = count_tokens(text, clip_tokenizer)
    t5_n = count_tokens(text, t5)
    assert clip_n == len(clip_tokenizer(text)["input_ids"]) and t5_n == len(t5(text)["input_ids"])
    assert clip_n != t5_n  # two vocabularies: a count made with one is never answered for the other
    assert count_tokens(text, clip_tokenizer) == clip_n and count_tokens(text, t5) == t5_n
