"""YAML loading: positions, and the YAML 1.1 traps closed."""

import pytest

from gdns.zone.errors import ZoneError, ZoneLoadError, format_path
from gdns.zone.yamlsafe import YAMLProblem, load


def data(text: str):
    return load(text, "z.yaml").data


def problem(text: str):
    with pytest.raises(YAMLProblem) as info:
        load(text, "z.yaml")
    return info.value.error


@pytest.mark.parametrize("word", ["NO", "no", "No", "yes", "Yes", "on", "off", "y", "n", "OFF"])
def test_yaml11_boolean_words_stay_strings(word):
    assert data(f"country: {word}") == {"country": word}


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("True", True), ("FALSE", False)])
def test_true_and_false_are_booleans(text, value):
    assert data(f"a: {text}") == {"a": value}


def test_leading_zero_is_not_octal():
    assert data("a: 010") == {"a": "010"}


@pytest.mark.parametrize("text", ["0o10", "0x10", "0b10", "1_000", "1e5", ".inf", ".nan"])
def test_other_number_spellings_stay_strings(text):
    assert data(f"a: {text}") == {"a": text}


def test_sexagesimal_stays_a_string():
    assert data("a: 1:30") == {"a": "1:30"}


def test_timestamps_stay_strings():
    assert data("a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00") == {
        "a": "2001-12-14",
        "b": "2001-12-14t21:59:43.10-05:00",
    }


@pytest.mark.parametrize("text, value", [("0", 0), ("42", 42), ("-7", -7), ("+5", 5), ("1.5", 1.5)])
def test_plain_decimal_numbers(text, value):
    assert data(f"a: {text}") == {"a": value}
    assert type(data(f"a: {text}")["a"]) is type(value)


@pytest.mark.parametrize("text", ["'010'", '"true"', "'42'", "'~'"])
def test_quoted_scalars_are_strings(text):
    assert data(f"a: {text}") == {"a": text[1:-1]}


@pytest.mark.parametrize("text", ["a: ~", "a: null", "a:"])
def test_null(text):
    assert data(text) == {"a": None}


def test_mapping_keys_are_their_source_text():
    assert data("1: a\ntrue: b\nNO: c\n010: d") == {"1": "a", "true": "b", "NO": "c", "010": "d"}


def test_duplicate_key_is_an_error_at_the_second_key():
    error = problem("a: 1\nb:\n  c: 2\n  c: 3\n")
    assert (error.line, error.column) == (4, 3)
    assert error.path == ("b", "c")
    assert "duplicate key 'c'" in error.message
    assert "line 3" in error.message


def test_keys_equal_as_text_are_duplicates():
    error = problem('1: a\n"1": b\n')
    assert (error.line, error.column) == (2, 1)
    assert "duplicate key '1'" in error.message


def test_non_scalar_key_is_an_error_at_the_key():
    error = problem("a:\n  ? [x]\n  : 1\n")
    assert (error.line, error.column) == (2, 5)
    assert "plain scalar" in error.message


@pytest.mark.parametrize("text", ["a: !!int 0x10", "a: !!float abc", "a: !!bool yes"])
def test_explicit_tag_with_bad_text_is_a_positioned_error(text):
    error = problem(text)
    assert (error.line, error.column) == (1, 4)
    assert error.path == ("a",)


@pytest.mark.parametrize("text", ["a: !foo x", "a: !!timestamp 2001-12-14", "a: !!binary aGk="])
def test_unsupported_scalar_tags_are_errors(text):
    assert "unsupported YAML tag" in problem(text).message


@pytest.mark.parametrize("text", ["a: !!set {b: 1}", "a: !foo {b: 1}", "a: !!omap [b: 1]"])
def test_tags_on_collections_are_errors(text):
    error = problem(text)
    assert "unsupported YAML tag" in error.message
    assert error.path == ("a",)


def test_explicit_str_tag_is_allowed():
    assert data("a: !!str 5") == {"a": "5"}


def test_merge_key_is_just_a_key():
    assert data("a: &x {b: 1}\nc:\n  <<: *x\n") == {"a": {"b": 1}, "c": {"<<": {"b": 1}}}


def test_positions_of_values_and_keys():
    doc = load("origin: example.com.\nrecords:\n  www:\n    A: [192.0.2.1, 192.0.2.2]\n", "z.yaml")
    assert doc.where(("origin",)) == (1, 9)
    assert doc.where(("records", "www"), key=True) == (3, 3)
    assert doc.where(("records", "www", "A")) == (4, 8)
    assert doc.where(("records", "www", "A", 1)) == (4, 20)


def test_position_of_missing_path_falls_back_to_nearest_ancestor():
    doc = load("a:\n  b: 1\n", "z.yaml")
    assert doc.where(("a", "nothere", "deeper")) == (2, 3)


def test_error_carries_file_position_and_path():
    doc = load("a:\n  b: 1\n", "z.yaml")
    assert str(doc.error(("a", "b"), "bad")) == "z.yaml:2:6: a.b: bad"


def test_syntax_error_has_position():
    error = problem("a: [1, 2\nb: 3\n")
    assert error.file == "z.yaml"
    assert error.line == 2
    assert error.message.startswith("YAML syntax")


def test_two_documents_are_an_error():
    error = problem("a: 1\n---\nb: 2\n")
    assert error.line == 2


def test_empty_document_is_none():
    assert data("# only a comment\n") is None


def test_byte_order_mark_is_ignored():
    assert data("\ufeffa: 1") == {"a": 1}


def test_aliases_may_share_a_value():
    assert data("web: &web [192.0.2.1, 192.0.2.2]\nwww: *web\n") == {
        "web": ["192.0.2.1", "192.0.2.2"],
        "www": ["192.0.2.1", "192.0.2.2"],
    }


def test_alias_bomb_is_an_error_not_a_hang():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    assert "too many values" in problem("\n".join(lines)).message


def test_deep_nesting_is_an_error_not_a_crash():
    error = problem("a: " + "[" * 200 + "]" * 200)
    assert "levels deep" in error.message
    assert error.line == 1
    # Deeper than PyYAML's own limit (PyYAML 6.0.4 and later): its error, still one clear line.
    error = problem("a: " + "[" * 2000 + "]" * 2000)
    assert "levels deep" in error.message or "nesting depth" in error.message
    assert error.line == 1


@pytest.mark.parametrize(
    "path, text",
    [
        ((), "(document)"),
        (("origin",), "origin"),
        (("records", "ns1.sub", "MX", 0, "preference"), 'records."ns1.sub".MX[0].preference'),
        (("records", "@", "A"), "records.@.A"),
        (("records", "*.static", "A"), 'records."*.static".A'),
        (("records", 'a"b'), 'records."a\\"b"'),
        ((0, "x"), "[0].x"),
    ],
)
def test_format_path(path, text):
    assert format_path(path) == text


def test_zone_errors_sort_by_file_then_position():
    errors = [
        ZoneError("b.yaml", 1, 1, (), "x"),
        ZoneError("a.yaml", 10, 1, (), "x"),
        ZoneError("a.yaml", 2, 30, (), "x"),
        ZoneError("a.yaml", 2, 4, (), "x"),
    ]
    assert [(e.file, e.line, e.column) for e in ZoneLoadError(errors).errors] == [
        ("a.yaml", 2, 4),
        ("a.yaml", 2, 30),
        ("a.yaml", 10, 1),
        ("b.yaml", 1, 1),
    ]
