"""Turning a doc sentence into a question a person would ask.

Deterministic, no model: a sentence that starts with a verb ("Return the
...", "Converts ...") becomes "the code that returns ..."; one that starts
like a noun phrase ("A wrapper around ...") becomes "the code for a wrapper
around ..."; anything else is quoted. The word lists are small and were
grown on the dev set's packages; a wrong guess only makes a question read
less naturally, never changes its answer.
"""

from __future__ import annotations

__all__ = ["TEMPLATE_WORDS", "how_question", "impact_question", "locate_question"]

# Words the question templates add; the ranked-grep floor ignores them.
TEMPLATE_WORDS = frozenset(
    """where code that which functions would break changed its return type defined does
    work list name files implement implements""".split()  # noqa: SIM905
)

# Words that never start a verb phrase here (articles, conjunctions, auxiliaries, plurals).
_NOT_VERBS = frozenset(
    """a an the this these that those some all one each every any internal private public
    helper helpers utility utilities base default simple common generic wrapper abstract
    main shared custom various several basic core extra additional optional new special
    low-level high-level when if while whether for in on like same similar as see note given
    with from to by at after before during only used called unless once because since until
    where how what why not no also just it we you they there here did does do is are was were
    has have had can could should would will must may might instead otherwise functions
    classes routines tools objects methods types""".split()  # noqa: SIM905
)
_VERBS = frozenset(
    """return get set create make build add remove delete check convert parse format render
    compute calculate determine find load save write read open close run execute call apply
    handle process generate initialize initialise register update reset clear test validate
    ensure raise emit send receive wrap unwrap encode decode escape unescape serialize
    deserialize normalize normalise resolve look fetch store copy clone merge split join match
    compare sort filter map reduce collect iterate yield print display show log start stop
    wait schedule subscribe unsubscribe define declare invoke dispatch transform translate
    replace insert append extend push pop pack unpack compile evaluate bind attach detach mark
    tell try attempt allocate free release acquire lock unlock count measure sleep kill
    terminate spawn select extract strip trim truncate pad round skip advance consume peek
    emit throw catch wrap mirror combine group buffer delay debounce throttle flatten subtract
    multiply divide give provide accept retrieve take put use turn prepare install remember
    forget cache track construct instantiate override patch visit walk traverse scan tokenize
    lex expand collapse indent dedent quote unquote""".split()  # noqa: SIM905
)


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _lower_first(text: str) -> str:
    """Lower-case a capitalised first word ("A helper"), not an acronym ("HTML")."""
    first = text.split()[0]
    if first[0].isupper() and (len(first) == 1 or first[1:].islower()):
        return text[0].lower() + text[1:]
    return text


# Words that begin a noun phrase ("a helper for ...", "wrapper around ...").
_NOUN_HEADS = frozenset(
    """a an the this these those some all one each every any internal private public helper
    helpers utility utilities base default simple common generic wrapper abstract main shared
    custom various several basic core extra additional optional special functions classes
    routines tools objects methods types""".split()  # noqa: SIM905
)
_DETERMINERS = frozenset(
    """the a an each all this these any every one its their out up down off over back to
    true false""".split()  # noqa: SIM905
)
_FINITE = frozenset(
    """is are was were does do did will can could should must may has have had returns""".split()  # noqa: SIM905
)


def _as_verb(word: str, following: str) -> str | None:
    """``word`` in the third person when it reads as a verb (imperative or already -s)."""
    low = word.lower()
    if low in _NOT_VERBS or not low.isalpha() or low.endswith("ing"):
        return None  # "parsing a version" is no imperative
    if low in _VERBS:
        return _third_person(low)
    stems = {low[:-1], low[:-2], low[:-3] + "y"} if low.endswith("s") else set()
    if stems & _VERBS and not low.endswith(("ss", "us", "is")):
        return low
    if following.lower() in _DETERMINERS:
        return low if low.endswith("s") and not low.endswith("ss") else _third_person(low)
    return None


def _verb_form(text: str) -> str | None:
    """``text`` as a clause after "the code that ...", or None when it is not a verb phrase."""
    words = text.split()
    verb = _as_verb(words[0], words[1] if len(words) > 1 else "")
    if verb is None:
        return None
    out = [verb, *words[1:]]
    if len(words) > 2 and words[1].lower() in ("and", "or"):
        second = _as_verb(words[2], words[3] if len(words) > 3 else "")
        if second is not None:
            out[2] = second
    return " ".join(out)


def _is_clause(text: str) -> bool:
    return any(w.lower() in _FINITE for w in text.split()[1:])


def _phrase(text: str) -> tuple[str, str]:
    """("verb", clause) | ("noun", phrase) | ("quote", text): how a question can hold ``text``."""
    clause = _verb_form(text)
    if clause is not None:
        return "verb", clause
    first = text.split()[0].lower()
    if first in ("used", "called", "invoked", "meant"):
        return "verb", "is " + _lower_first(text)
    if text.startswith("is "):  # a Go doc without its leading name: "[Command] is ..."
        return "verb", text
    if first in _NOUN_HEADS and not _is_clause(text):
        return "noun", _lower_first(text)
    return "quote", text


def locate_question(text: str) -> str:
    mode, phrase = _phrase(text)
    if mode == "verb":
        return f"Where is the code that {phrase}?"
    if mode == "noun":
        return f"Where is the code for {phrase}?"
    return f'Where is the code described as "{phrase}"?'


def how_question(text: str) -> str:
    mode, phrase = _phrase(text)
    if mode == "verb":
        return f"How does the code that {phrase} work?"
    if mode == "noun":
        return f"How does {phrase} work?"
    return f'How does the part of the code described as "{phrase}" work?'


def impact_question(name: str, path: str) -> str:
    return f"Which functions would break if `{name}` (defined in `{path}`) changed its return type?"
