from pathlib import Path

import pytest

from lstm_tagger.corpus.reader import bucket_order, read_conllu, read_corpus, read_tsv
from lstm_tagger.errors import DataError

CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t_\t_\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t_\t_\t_\t_
3\tn't\tnot\tPART\tRB\t_\t_\t_\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t_\t_\t_\t_
4.1\tknown\t_\t_\t_\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t.\t_\t_\t_\t_\t_

1\tYes\tyes\tINTJ\tUH\t_\t_\t_\t_\t_
"""


def write(tmp_path: Path, text: str, name: str = "x.conllu", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    sentences = read_conllu(write(tmp_path, CONLLU))
    assert [s.words for s in sentences] == [("I", "do", "n't", "know", "."), ("Yes",)]
    assert sentences[0].tags == ("PRON", "AUX", "PART", "VERB", "PUNCT")


def test_conllu_xpos_column(tmp_path):
    sentences = read_conllu(write(tmp_path, CONLLU), columns=["xpos"])
    assert sentences[0].tags == ("PRP", "VBP", "RB", "VB", ".")


def test_conllu_several_columns_and_feats_underscore_is_a_value(tmp_path):
    text = CONLLU.replace("1\tI\tI\tPRON\tPRP\t_", "1\tI\tI\tPRON\tPRP\tCase=Nom|Number=Sing")
    sentences = read_conllu(write(tmp_path, text), columns=["xpos", "upos", "feats"])
    assert list(sentences[0].columns) == ["xpos", "upos", "feats"]
    assert sentences[0].columns["upos"] == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert sentences[0].columns["feats"] == ("Case=Nom|Number=Sing", "_", "_", "_", "_")
    assert sentences[0].tags == ("PRP", "VBP", "RB", "VB", ".")  # the first column's


def test_conllu_column_all_underscore_is_one_clear_error(tmp_path):
    path = write(tmp_path, "1\tA\ta\tDET\t_\t_\t_\t_\t_\t_\n\n1\tdog\tdog\tNOUN\t_\t_\t_\t_\t_\t_\n")
    with pytest.raises(DataError) as err:
        read_conllu(path, ["upos", "xpos"])
    assert str(err.value) == (
        f"{path}:1: missing XPOS tag for 'A' (every word's XPOS is _, nothing to learn: remove xpos from data.columns)"
    )
    with pytest.raises(DataError, match=r"x\.conllu:3: missing XPOS tag for 'dog'"):  # only some missing: the first
        read_conllu(write(tmp_path, "1\tA\ta\tDET\tDT\t_\t_\t_\t_\t_\n\n1\tdog\tdog\tNOUN\t_\t_\t_\t_\t_\t_\n"), ["upos", "xpos"])


def test_conllu_bom_and_crlf(tmp_path):
    path = tmp_path / "crlf.conllu"
    path.write_bytes(b"\xef\xbb\xbf" + CONLLU.replace("\n", "\r\n").encode())
    assert read_conllu(path) == read_conllu(write(tmp_path, CONLLU))


@pytest.mark.parametrize(
    "line, message",
    [
        ("1\tdog\tdog\tNOUN", "x.conllu:3: expected 10 tab-separated columns, found 4"),
        ("1\t\tdog\tNOUN\t_\t_\t_\t_\t_\t_", "x.conllu:3: empty FORM"),
        ("1\tdog\tdog\t_\t_\t_\t_\t_\t_\t_", "x.conllu:3: missing UPOS tag for 'dog'"),
        ("one\tdog\tdog\tNOUN\t_\t_\t_\t_\t_\t_", "x.conllu:3: ID 'one' is not a number"),
    ],
)
def test_conllu_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, f"# c\n1\tA\ta\tDET\t_\t_\t_\t_\t_\t_\n{line}\n\n")
    with pytest.raises(DataError) as err:
        read_conllu(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]) + ":" + message.split(":", 1)[1])


def test_not_utf8_is_reported_with_line(tmp_path):
    path = write(tmp_path, "1\tA\ta\tDET\t_\t_\t_\t_\t_\t_\n2\tcaf\xe9\tx\tNOUN\t_\t_\t_\t_\t_\t_\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"x\.conllu:2: not UTF-8"):
        read_conllu(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_conllu(tmp_path / "nope.conllu")


def test_tsv_reader_and_errors(tmp_path):
    path = write(tmp_path, "The\tDET\ndog\tNOUN\n\n\nHi\tINTJ\n", "x.tsv")
    sentences = read_tsv(path)
    assert [(s.words, s.tags) for s in sentences] == [(("The", "dog"), ("DET", "NOUN")), (("Hi",), ("INTJ",))]
    assert read_corpus(path, "tsv") == sentences
    with pytest.raises(DataError, match=r"x\.tsv:2: expected 2 tab-separated columns \(word, tag\), found 3"):
        read_tsv(write(tmp_path, "The\tDET\ndog\tNOUN\tx\n", "x.tsv"))
    with pytest.raises(DataError, match=r"x\.tsv:1: missing tag for 'The'"):
        read_tsv(write(tmp_path, "The\t\n", "x.tsv"))
    with pytest.raises(DataError, match=r"x\.tsv:1: empty word"):
        read_tsv(write(tmp_path, "\tDET\n", "x.tsv"))


def test_bucket_order_covers_every_sentence_once_and_groups_lengths():
    import random

    lengths = [(i * 7919) % 60 + 1 for i in range(1000)]
    batches = bucket_order(lengths, 32, random.Random(1))
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # length-bucketed: little padding
    assert bucket_order(lengths, 32, random.Random(1)) == batches  # same seed, same order
    assert bucket_order(lengths, 32, random.Random(2)) != batches
