"""Analyses one article for research-agent: word count, distinct words, top three words.

Input {"title": str, "text": str}; output {"title", "word_count", "unique_words",
"top_words": [[word, count], ...]}. Words are runs of letters, lowercased; ties in
top_words go alphabetically. Standard library only.
"""

import os
import re
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "jsonpipe", "python"))
from jsonpipe import serve  # noqa: E402

WORD = re.compile(r"[^\W\d_]+")  # letters only, Unicode-aware
TOP = 3


def analyse(article):
    words = WORD.findall(article["text"].lower())
    counts = Counter(words)
    top = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:TOP]
    return {
        "title": article["title"],
        "word_count": len(words),
        "unique_words": len(counts),
        "top_words": [[w, c] for w, c in top],
    }


if __name__ == "__main__":
    serve(analyse)
