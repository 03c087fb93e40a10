"""Small datasets shipped with ember, so examples and tests need no network."""

from .digits import Digits, load_digits
from .text import CharCorpus, load_corpus_text
