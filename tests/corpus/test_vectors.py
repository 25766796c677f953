import gzip
from pathlib import Path

import pytest
import torch

from lstm_tagger.errors import DataError
from lstm_tagger.corpus.vectors import Vectors, align, read_vectors

ROWS = "the 0.5 -1.25 3e-2\n, 1 2 3\ncat -0.0 100 0.001\n"
VALUES = [[0.5, -1.25, 0.03], [1.0, 2.0, 3.0], [-0.0, 100.0, 0.001]]


def write(tmp_path: Path, text: str | bytes, name: str = "v.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_values_are_parsed_exactly(tmp_path):
    vectors = read_vectors(write(tmp_path, ROWS))
    assert vectors.words == ["the", ",", "cat"]
    assert vectors.matrix.dtype == torch.float32
    assert vectors.matrix.shape == (3, 3) and vectors.dim == 3
    assert torch.equal(vectors.matrix, torch.tensor(VALUES, dtype=torch.float32))


def test_header_and_no_header_give_the_same_vectors(tmp_path):
    plain = read_vectors(write(tmp_path, ROWS, "glove.txt"))
    headed = read_vectors(write(tmp_path, "3 3\n" + ROWS, "fasttext.vec"), dim=3)
    assert headed.words == plain.words
    assert torch.equal(headed.matrix, plain.matrix)


def test_gzip_file(tmp_path):
    path = write(tmp_path, gzip.compress(("3 3\n" + ROWS).encode()), "v.vec.gz")
    vectors = read_vectors(path)
    assert vectors.words == ["the", ",", "cat"]
    assert torch.equal(vectors.matrix, torch.tensor(VALUES))


def test_crlf_trailing_spaces_bom_and_blank_lines(tmp_path):
    text = "\ufeff3 3 \r\n" + ROWS.replace("\n", " \r\n") + "\r\n"
    vectors = read_vectors(write(tmp_path, text))
    assert vectors.words == ["the", ",", "cat"]
    assert torch.equal(vectors.matrix, torch.tensor(VALUES))


def test_duplicate_word_keeps_the_first(tmp_path):
    vectors = read_vectors(write(tmp_path, "a 1 2\nb 3 4\na 5 6\nc 7 8\n"))
    assert vectors.words == ["a", "b", "c"]
    assert vectors.matrix.tolist() == [[1, 2], [3, 4], [7, 8]]


def test_max_words_keeps_the_first_and_stops_reading(tmp_path):
    path = write(tmp_path, "4 2\na 1 2\na 0 0\nb 3 4\nthis line is broken\n")
    vectors = read_vectors(path, max_words=2)
    assert vectors.words == ["a", "b"]
    assert vectors.matrix.tolist() == [[1, 2], [3, 4]]


def test_word_with_spaces_takes_all_but_the_last_fields(tmp_path):
    text = "the 1 2\nis name@domain.com 3 4\n. . . 5 6\n"
    vectors = read_vectors(write(tmp_path, "3 2\n" + text))
    assert vectors.words == ["the", "is name@domain.com", ". . ."]
    assert vectors.matrix.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert read_vectors(write(tmp_path, text, "glove.txt")).words == vectors.words


def test_unicode_line_separators_stay_inside_the_word(tmp_path):
    vectors = read_vectors(write(tmp_path, "a\u2028b 1 2\nc\x85d\x0ce 3 4\nf\rg 5 6\n"))
    assert vectors.words == ["a\u2028b", "c\x85d\x0ce", "f\rg"]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("a 1 2 3\nb 1 2\n", 2, "expected 3 values after the word, found 2"),
        ("2 3\na 1 2 3\nb 4 5\n", 3, "expected 3 values after the word, found 2"),
        ("a 1 2 3\nb\n", 2, "expected 3 values after the word, found 0"),
        ("a 1 2 3\nb 1 x2 3\n", 2, "value 2 'x2' is not a number"),
        ("a 1 2\nb 1 " + "y" * 100 + "\n", 2, "value 2 'yyyyyyyyyyyyyyyyyyyy'... is not a number"),
        ("a 1 2\nb 1 2\nc nan 2\n", 3, "value 1 'nan' is not finite (nan or inf)"),
        ("a 1 2\nb 1 -inf\n", 2, "value 2 '-inf' is not finite (nan or inf)"),
        ("a 1 2\nb 1 1e50\n", 2, "value 2 '1e50' is too large for float32"),
        ("2 3\na 1 2 3 4\nb 1 2 3 4\n", 2, "4 values but the header announces 3 dimensions"),
        ("2 3\na 1 2\nb 1 2\n", 2, "2 values but the header announces 3 dimensions"),
        ("3 2\na 1 2\nb 3 4\n", 1, "the header announces 3 vectors but the file has 2"),
        ("1 2\na 1 2\nb 3 4\n", 3, "vector 2, but the header (line 1) announces 1"),
        ("2 0\n", 1, "the header announces vectors of 0 dimensions"),
        ("\nlonely\n", 2, "no values after the word 'lonely'"),
        ("a 1 2\n 3 4\n", 2, "empty word"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_vectors(path)
    assert str(err.value) == f"{path}:{line}: {message}"


def test_not_utf8_names_line_and_byte(tmp_path):
    path = write(tmp_path, b"a 1 2\nb\xc3\xa9 3 4\nc\xff 5 6\n")
    with pytest.raises(DataError) as err:
        read_vectors(path)
    assert str(err.value) == f"{path}:3: not UTF-8 (byte 2 of the line)"


@pytest.mark.parametrize("text, dim, line", [("a 1 2 3\n", 5, 1), ("\na 1 2 3\n", 2, 2), ("1 3\na 1 2 3\n", 2, 1)])
def test_dimension_differing_from_embedding_dim(tmp_path, text, dim, line):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_vectors(path, dim=dim)
    assert str(err.value) == f"{path}:{line}: the vectors have 3 dimensions but model.embedding_dim is {dim}"


@pytest.mark.parametrize("text", ["", "\n\n", "0 300\n"])
def test_no_vectors(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_vectors(path)
    assert str(err.value) == f"{path}: no vectors in the file"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError) as err:
        read_vectors(tmp_path / "nope.vec")
    assert str(err.value) == f"{tmp_path / 'nope.vec'}: vectors file not found"
    with pytest.raises(DataError) as err:
        read_vectors(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a directory, expected a vectors file"


def test_truncated_gzip_is_a_data_error(tmp_path):
    data = gzip.compress(("2000 3\n" + "w 0.1 0.2 0.3\n" * 2000).encode())
    path = write(tmp_path, data[: len(data) // 2], "v.vec.gz")
    with pytest.raises(DataError) as err:
        read_vectors(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and "cannot read" in message and "\n" not in message


def test_align_fills_exact_then_lower_case_matches(tmp_path):
    vectors = Vectors(["<pad>", "the", "The", "paris", "Dog"], torch.arange(10.0).reshape(5, 2))
    words = ["<pad>", "<unk>", "The", "THE", "Paris", "dog", "cat"]
    embedding = torch.nn.Embedding(len(words), 2, padding_idx=0)
    before = embedding.weight.detach().clone()
    filled = align(vectors, words, embedding.weight)
    weight = embedding.weight.detach()
    assert filled == 3
    assert weight[2].tolist() == [4.0, 5.0]  # "The": exact match, not "the"
    assert weight[3].tolist() == [2.0, 3.0]  # "THE" -> "the"
    assert weight[4].tolist() == [6.0, 7.0]  # "Paris" -> "paris"
    for row in (0, 1, 5, 6):  # <pad> (in the file, but never touched), <unk>, "dog" ("Dog" is not its lower case), cat
        assert torch.equal(weight[row], before[row])
    assert embedding.weight.requires_grad
