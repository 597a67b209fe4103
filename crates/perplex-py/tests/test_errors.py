"""Bad input from Python raises the exception of its kind (the CLI's exit
code classes) with the hint; no panic crosses the boundary."""

import pytest

import perplex
from conftest import FIXTURES, TEXTS, TINY


def test_the_hierarchy():
    for cls in (perplex.UsageError, perplex.InputError, perplex.ModelError,
                perplex.EvaluationError, perplex.InternalError):
        assert issubclass(cls, perplex.PerplexError)
    assert issubclass(perplex.UsageError, ValueError)
    assert issubclass(perplex.InputError, ValueError)


def test_a_missing_model_is_a_model_error_with_the_cli_hint(cli):
    with pytest.raises(perplex.ModelError) as caught:
        perplex.load("/no/such/model")
    e = caught.value
    assert "not found" in str(e) and e.hint and f"hint: {e.hint}" in str(e)
    code, _, err = cli("eval", "-m", "/no/such/model", "text")
    assert code == e.exit_code == 4
    assert e.hint in err


def test_a_broken_model_names_its_cause(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(perplex.ModelError) as caught:
        perplex.load(tmp_path)
    assert caught.value.hint or caught.value.causes


@pytest.mark.parametrize("texts", [[1, "a"], ["a", None], b"bytes", 42, [b"x"]])
def test_texts_that_are_not_strings(tiny, texts):
    with pytest.raises(perplex.InputError) as caught:
        tiny.evaluate(texts, context=16)
    assert caught.value.hint


@pytest.mark.parametrize("texts", [[], None, ()])
def test_no_texts(tiny, texts):
    with pytest.raises(perplex.InputError, match="no input") as caught:
        tiny.evaluate(texts)
    assert caught.value.hint


def test_nothing_to_score_is_an_input_error(tiny):
    with pytest.raises(perplex.InputError) as caught:
        tiny.evaluate(["", ""], context=16)
    assert caught.value.exit_code == 3 and caught.value.hint


def test_a_missing_file_is_an_input_error(tiny, tmp_path):
    with pytest.raises(perplex.InputError) as caught:
        tiny.evaluate(files=tmp_path / "missing.txt", context=16)
    assert "missing.txt" in str(caught.value)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"protocol": "windows"}, "not a protocol"),
        ({"bos": "sometimes"}, "not a BOS policy"),
        ({"stride": 4}, "stride applies only"),
        ({"context": -1}, "context=-1"),
        ({"context": 1024}, "longer than the model's context"),
        ({"batch_size": 0}, "batch size"),
        ({"protocol": "sliding", "context": 16, "stride": 40}, "stride"),
        ({"contxt": 16}, "unknown option contxt"),
        ({"split": "words"}, "not a way to split"),
        ({"join": 3}, "separator"),
    ],
)
def test_wrong_options_are_usage_errors(tiny, options, match):
    with pytest.raises(perplex.UsageError, match=match) as caught:
        tiny.evaluate(TEXTS, **options)
    assert caught.value.hint and caught.value.exit_code == 2


def test_wrong_load_options():
    with pytest.raises(perplex.UsageError, match="threads"):
        perplex.load(TINY, threads=0)
    with pytest.raises(perplex.UsageError):
        perplex.load(42)
    with pytest.raises(perplex.UsageError, match="unknown mock model"):
        perplex.load("mock:nothing:x")


def test_compare_refuses_one_handle_twice_and_a_lone_model(tiny):
    with pytest.raises(perplex.UsageError, match="given twice"):
        perplex.compare(tiny, tiny, texts=TEXTS, context=16)
    with pytest.raises(perplex.UsageError, match="at least one other"):
        perplex.compare(tiny, texts=TEXTS)
    with pytest.raises(perplex.UsageError, match="confidence"):
        perplex.compare(tiny, FIXTURES / "tiny-llama-q8_0.gguf", texts=TEXTS, context=16, confidence=1.5)
    # the handles are usable again after a failed compare
    assert tiny.evaluate(TEXTS, context=16).perplexity > 0


def test_sweep_of_a_folder_without_checkpoints(tmp_path):
    with pytest.raises(perplex.InputError) as caught:
        perplex.sweep(tmp_path, ["text"], context=16)
    assert caught.value.hint


def test_a_panic_becomes_an_internal_error(tiny):
    with pytest.raises(perplex.InternalError, match="deliberate panic") as caught:
        perplex._perplex._panic_for_tests()
    assert "bug" in caught.value.hint
    # and the process goes on
    assert tiny.evaluate(TEXTS, context=16).perplexity > 0


def test_hints_name_keyword_arguments_not_cli_flags(monkeypatch):
    # a run that cannot fit in the memory left: the hint says what to change
    monkeypatch.setenv("PERPLEX_MAX_MEMORY", "1M")
    model = perplex.load(TINY)
    with pytest.raises(perplex.UsageError) as caught:
        model.evaluate(["The cat sat on the mat."], context=32)
    hint = caught.value.hint
    assert "context=" in hint and "--" not in hint, hint
