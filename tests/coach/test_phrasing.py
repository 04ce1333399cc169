import pytest

from assistant.coach import intents, yamldoc
from assistant.coach.phrasing import (
    DEFAULT_FILLERS,
    Fillers,
    expand,
    normalise,
    parse_template,
    rule_problem,
    strip_fillers,
)
from assistant.errors import ConfigError
from tests.kit.sessions import bundled_intents


def phrases_of(template: str, **rules: str) -> set[str]:
    trees = {name: parse_template(text) for name, text in rules.items()}
    return {p.text for p in expand(parse_template(template), {}, trees)}


# -- fillers -------------------------------------------------------------------

FILLERS = Fillers.of(before=["okay", "can you", "let's", "please"], after=["please", "for now", "a bit"])


def test_fillers_are_normalised_longest_first() -> None:
    assert FILLERS.before == ("can you", "let us", "okay", "please")
    assert FILLERS.after == ("a bit", "for now", "please")


def test_cores_come_longest_first_from_both_ends() -> None:
    said = normalise("Okay, can you slow down a bit please?")
    assert list(FILLERS.cores(said)) == [
        "okay can you slow down a bit please",
        "okay can you slow down a bit",
        "can you slow down a bit please",
        "can you slow down a bit",
        "okay can you slow down",
        "slow down a bit please",
        "can you slow down",
        "slow down a bit",
        "slow down",
    ]
    assert list(FILLERS.cores(said, longest=2)) == ["slow down"]


def test_fillers_are_only_taken_off_the_ends() -> None:
    assert list(FILLERS.cores("slow please down")) == ["slow please down"]
    assert list(FILLERS.cores("please please")) == ["please please", "please"]  # never empty
    assert FILLERS.stripped("please stop please") == "stop"


def test_the_single_word_fillers_still_work() -> None:
    assert strip_fillers("um okay pause please") == "pause"
    assert strip_fillers("oh coach stop now") == "stop"
    assert DEFAULT_FILLERS.before == DEFAULT_FILLERS.after


def test_a_pathological_text_is_cheap() -> None:
    said = " ".join(["please"] * 5000 + ["stop"] + ["please"] * 5000)
    assert list(FILLERS.cores(said, longest=1)) == ["stop"]


# -- rules -----------------------------------------------------------------------


def test_rules_compose_templates() -> None:
    rules = {"slow": "(slow|ease) down", "bit": "[a] (bit|little)", "ask": "<slow> [<bit>]"}
    assert phrases_of("<ask>", **rules) == {
        "slow down",
        "ease down",
        "slow down bit",
        "slow down little",
        "slow down a bit",
        "slow down a little",
        "ease down bit",
        "ease down little",
        "ease down a bit",
        "ease down a little",
    }


def test_an_unknown_rule_in_a_template() -> None:
    with pytest.raises(ValueError, match="unknown rule <nowhere>"):
        phrases_of("go <nowhere>")


def test_rule_problems_name_the_rule() -> None:
    def problem(**rules: str) -> tuple[str, str] | None:
        return rule_problem({name: parse_template(text) for name, text in rules.items()})

    assert problem(a="<b> x", b="y") is None
    assert problem(a="<b> x", b="[<c>]") == ("a", "refers to an unknown rule <c> (in <b>)")
    assert problem(a="<b>", b="(x|<c>)", c="<a>") == ("a", "refers to itself (<a> -> <b> -> <c> -> <a>)")
    assert problem(a="x [<a>]") == ("a", "refers to itself (<a> -> <a>)")


def _doc(text: str) -> yamldoc.Doc:
    return yamldoc.parse(text, "en.yaml")


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("rules", "bad", "message"),
    [
        ('  a: "x <nowhere>"\n', "  a:", "rules.a: refers to an unknown rule <nowhere>"),
        ('  a: "x [<b>]"\n  b: "y <a>"\n', "  a:", r"rules.a: refers to itself \(<a> -> <b> -> <a>\)"),
        ('  a: "x (y|z"\n', "  a:", "rules.a: bad template 'x \\(y|z': missing"),
    ],
)
def test_a_bad_rule_is_an_error_at_its_line(rules: str, bad: str, message: str) -> None:
    text = bundled_intents("\nrules:\n", "\nrules:\n" + rules)
    with pytest.raises(ConfigError, match=rf"^en\.yaml:{_line_of(text, bad)}: {message}"):
        intents.from_doc(_doc(text))


def test_an_unknown_rule_in_an_intent_is_an_error_at_its_line() -> None:
    text = bundled_intents('    - "unpause"\n', '    - "unpause <nowhere>"\n')
    with pytest.raises(
        ConfigError, match=rf"^en\.yaml:{_line_of(text, '<nowhere>')}: intents\.resume\[2\]: unknown rule"
    ):
        intents.from_doc(_doc(text))
