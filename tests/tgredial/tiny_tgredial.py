"""A tiny, clearly synthetic TG-ReDial data root in CRSLab's layout (``dataset/tgredial/pkuseg``), for tests.

The conversations, the CN-DBpedia and HowNet edges, the profiles and the reviews are made up here (a few Chinese
exchanges about well-known films); only names are written, as in CRSLab's files. The vocabularies are the real
TG-ReDial ones from ``shared/data/tgredial`` when that folder exists (every name used here is in them; a check
says which is not), else small ones made from the names used here, padded with filler movies to 60 (CRSLab's
systems rank with ``topk(..., 50)``); ``TGREDIAL_VOCAB_DIR=/nonexistent pytest tests/tgredial`` runs the tests on
those. ``user2history.json`` is made up in both cases (it is not in the shared data).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

SHARED_TGREDIAL = Path(os.environ.get("TGREDIAL_VOCAB_DIR")
                       or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tgredial")
REAL_FILES = {"token2id.json": "crslab_c2/token2id.json", "entity2id.json": "crslab_c2/entity2id.json",
              "movie_ids.json": "crslab_c2/movie_ids.json", "topic2id.json": "crslab_c2/topic2id.json",
              "word2id.json": "crslab_pkuseg/word2id.json", "user2profile.json": "crslab_pkuseg/user2profile.json"}
SPECIALS = ["__pad__", "__start__", "__end__", "__unk__"]
# Movie names as CRSLab's ``movie`` field writes them; 26615319 is a movie known only by its Douban id, whose
# title (星空下的猫 here, made up) is only ever written between 《》 in the dialogs.
MOVIES = ["霸王别姬", "大话西游", "少林足球", "喜剧之王", "千与千寻", "26615319", "盗梦空间", "泰坦尼克号", "教父"]
PEOPLE = ["周星驰", "张国荣", "宫崎骏"]
GENRES = ["喜剧", "爱情", "科幻", "动画", "经典", "美国"]
WORDS = ["喜剧", "爱情", "科幻", "动画", "经典", "搞笑", "感人", "电影", "好看", "音乐", "故事"]
TOPICS = ["喜剧", "爱情", "科幻", "动画", "经典", "周星驰", "张国荣", "宫崎骏", "好看"]
USERS = ["0", "1", "2", "3"]
KG = [("霸王别姬", "主演", "张国荣"), ("霸王别姬", "类型", "爱情"), ("大话西游", "主演", "周星驰"),
      ("大话西游", "类型", "喜剧"), ("少林足球", "主演", "周星驰"), ("少林足球", "类型", "喜剧"),
      ("喜剧之王", "主演", "周星驰"), ("喜剧之王", "类型", "喜剧"), ("喜剧之王", "类型", "爱情"),
      ("千与千寻", "导演", "宫崎骏"), ("千与千寻", "类型", "动画"), ("26615319", "导演", "宫崎骏"),
      ("26615319", "类型", "动画"), ("盗梦空间", "类型", "科幻"), ("盗梦空间", "国家", "美国"),
      ("泰坦尼克号", "类型", "爱情"), ("泰坦尼克号", "国家", "美国"), ("教父", "类型", "经典"),
      ("教父", "国家", "美国")]
HOWNET = [("喜剧", "同类", "搞笑"), ("爱情", "同类", "感人"), ("动画", "同类", "电影"), ("科幻", "同类", "电影"),
          ("经典", "同类", "好看"), ("音乐", "同类", "电影"), ("故事", "同类", "电影")]

# (role, tokens, movies); the first utterance of each is the Seeker's. Titles are written between 《》.
S, R = "Seeker", "Recommender"
CONVERSATIONS: Dict[str, List[List[tuple]]] = {
    "train": [
        [(S, "你好 ， 我 想 看 喜剧 电影", []),
         (R, "推荐 你 看 《 大话 西游 》 ， 周星驰 的 经典", ["大话西游"]),
         (S, "不错 ， 还有 什么 搞笑 的 吗 ？", []), (R, "《 少林 足球 》 也 很 好看", ["少林足球"])],
        [(S, "有 没有 感人 的 爱情 电影 ？", []),
         (R, "可以 试试 《 霸王别姬 》 ， 张国荣 的 演技 非常 好", ["霸王别姬"]),
         (S, "谢谢 ， 我 也 喜欢 《 泰坦尼克号 》", ["泰坦尼克号"]),
         (R, "那 你 一定 喜欢 《 喜剧 之 王 》", ["喜剧之王"])],
        [(S, "我 喜欢 宫崎骏 的 动画", []), (R, "推荐 《 千 与 千 寻 》 ， 故事 很 感人", ["千与千寻"]),
         (S, "还有 吗 ？", []), (R, "《 星空 下 的 猫 》 的 音乐 也 很 好", ["26615319"])],
        [(S, "推荐 一 部 科幻 电影 吧", []), (R, "《 盗梦 空间 》 ， 美国 的 经典 科幻", ["盗梦空间"]),
         (S, "看 了 ， 真的 不错", []), (R, "那 再 看看 《 教父 》 吧", ["教父"])],
        [(S, "周星驰 的 电影 有 什么 好看 的 ？", []),
         (R, "《 喜剧 之 王 》 和 《 少林 足球 》", ["喜剧之王", "少林足球"]),
         (S, "哈哈 ， 都 很 搞笑", []), (R, "还有 《 大话 西游 》 ， 非常 经典", ["大话西游"])],
        [(S, "你好 ， 想 看 动画 电影", []), (R, "《 星空 下 的 猫 》 很 好看", ["26615319"]),
         (S, "宫崎骏 的 我 都 喜欢", []), (R, "那 《 千 与 千 寻 》 一定 要 看", ["千与千寻"])],
    ],
    "valid": [
        [(S, "我 想 看 周星驰 的 喜剧", []), (R, "推荐 《 少林 足球 》", ["少林足球"]),
         (S, "看 了 ， 还有 吗 ？", []), (R, "《 大话 西游 》 也 很 经典", ["大话西游"])],
        [(S, "有 什么 爱情 电影 ？", []), (R, "《 泰坦尼克号 》 很 感人", ["泰坦尼克号"])],
    ],
    "test": [
        [(S, "推荐 一 部 动画 吧", []), (R, "宫崎骏 的 《 千 与 千 寻 》", ["千与千寻"]),
         (S, "不错 ， 还有 吗 ？", []), (R, "《 星空 下 的 猫 》", ["26615319"])],
        [(S, "我 喜欢 张国荣", []), (R, "那 就 看 《 霸王别姬 》", ["霸王别姬"]),
         (S, "还有 美国 的 经典 吗 ？", []), (R, "《 教父 》 ， 非常 经典", ["教父"])],
    ],
}
# (movie, rating or None, text cut into words): the review file holds the text without spaces, as real reviews.
REVIEWS = [
    ("霸王别姬", 10, "张国荣 的 演技 非常 好 ， 故事 很 感人 。 是 一 部 经典 的 电影 ！"),
    ("霸王别姬", 6, "电影 有点 长 ， 但是 音乐 很 好听 。"),
    ("大话西游", 9, "周星驰 的 喜剧 非常 搞笑 ， 结局 又 很 感人 。"),
    ("少林足球", None, "周星驰 把 足球 拍 得 这么 搞笑 ， 真的 很 好看 。"),
    ("喜剧之王", 8, "这 是 周星驰 最 感人 的 一 部 喜剧 电影 。"),
    ("千与千寻", 10, "宫崎骏 的 动画 故事 很 好看 ， 音乐 也 很 好 。"),
    ("星空下的猫", 9, "宫崎骏 的 音乐 和 故事 都 非常 好看 。"),
    ("盗梦空间", 9, "美国 的 科幻 电影 里 这 部 最 好看 了 。"),
    (999999999, 9, "这 部 电影 不 在 数据 里 面 ， 所以 不 会 被 用 到 。"),
]


def _utterance(role: str, text: str, movies: Sequence[str], local_id: int) -> Dict[str, Any]:
    tokens = text.split()
    return {"local_id": local_id, "role": role, "text": tokens, "movie": list(movies),
            "entity": [token for token in tokens if token in PEOPLE or token in GENRES],
            "word": [token for token in tokens if token in WORDS],
            "target": [local_id, "推荐电影" if movies else "谈论", [t for t in tokens if t in TOPICS] or None],
            "final": ["推荐电影", [t for t in TOPICS if t in tokens][:2] or [None]]}


def conversations(split: str) -> List[Dict[str, Any]]:
    """The split's conversations in CRSLab's TG-ReDial format."""
    offset = {"train": 1, "valid": 101, "test": 201}[split]
    return [{"conv_id": str(offset + k), "user_id": USERS[k % len(USERS)],
             "messages": [_utterance(role, text, movies, i + 1) for i, (role, text, movies) in enumerate(dialog)]}
            for k, dialog in enumerate(CONVERSATIONS[split])]


def _synthetic_vocab() -> Dict[str, Any]:
    tokens = sorted({t for dialogs in CONVERSATIONS.values() for dialog in dialogs for _, text, _ in dialog
                     for t in text.split()} | {t for _, _, text in REVIEWS for t in text.split()})
    movies = MOVIES + [f"填充电影{k}" for k in range(60 - len(MOVIES))]
    entities = movies + PEOPLE + [g for g in GENRES if g not in movies]
    entity2id = {name: idx for idx, name in enumerate(entities, start=1)}
    return {"token2id.json": {t: i for i, t in enumerate(SPECIALS + tokens)}, "entity2id.json": entity2id,
            "movie_ids.json": [entity2id[m] for m in movies],
            "topic2id.json": {t: i for i, t in enumerate(TOPICS, start=1)},
            "word2id.json": {w: i for i, w in enumerate(WORDS, start=1)},
            "user2profile.json": {u: [["我", "喜欢", "电影"]] for u in USERS}}


def missing_from_vocab(vocab: Dict[str, Any]) -> List[str]:
    """Names this dataset uses that ``vocab`` lacks (empty for the real TG-ReDial vocabularies)."""
    entity2id, movie_ids = vocab["entity2id.json"], set(vocab["movie_ids.json"])
    missing = [m for m in MOVIES if entity2id.get(m) not in movie_ids]
    missing += [e for e in PEOPLE + GENRES if e not in entity2id]
    missing += [w for w in WORDS if w not in vocab["word2id.json"]]
    missing += [t for t in TOPICS if t not in vocab["topic2id.json"]]
    missing += [u for u in USERS if u not in vocab["user2profile.json"]]
    return missing


def write_tiny_tgredial(root: Path, vocab_dir: Optional[Path] = SHARED_TGREDIAL) -> Path:
    """Write ``root/dataset/tgredial/pkuseg`` (CRSLab's files and ``.built`` 0.3) and ``root/reviews.jsonl``;
    return ``root``. ``vocab_dir``: the shared TG-ReDial folder to take the vocabularies from (if it exists)."""
    dpath = root / "dataset" / "tgredial" / "pkuseg"
    dpath.mkdir(parents=True)
    real = vocab_dir is not None and all((vocab_dir / source).is_file() for source in REAL_FILES.values())
    if real:
        for name, source in REAL_FILES.items():
            shutil.copyfile(vocab_dir / source, dpath / name)
        vocab = {name: json.loads((dpath / name).read_text(encoding="utf-8")) for name in REAL_FILES}
        missing = missing_from_vocab(vocab)
        assert not missing, f"not in the real TG-ReDial vocabularies: {missing}"
    else:
        vocab = _synthetic_vocab()
        for name, data in vocab.items():
            (dpath / name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for split in CONVERSATIONS:
        (dpath / f"{split}_data.json").write_text(json.dumps(conversations(split), ensure_ascii=False),
                                                  encoding="utf-8")
    (dpath / "cn-dbpedia.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in KG), encoding="utf-8")
    (dpath / "hownet.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in HOWNET), encoding="utf-8")
    entity2id = vocab["entity2id.json"]
    history = {f"{conv['conv_id']}/2": [entity2id["霸王别姬"]] for conv in conversations("train")}
    (dpath / "user2history.json").write_text(json.dumps(history), encoding="utf-8")
    (dpath / ".built").write_text("2026-01-01 00:00:00\n0.3", encoding="utf-8")
    reviews = [{"movie": movie, "text": "".join(text.split()), **({"rating": rating} if rating else {})}
               for movie, rating, text in REVIEWS]
    (root / "reviews.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reviews),
                                        encoding="utf-8")
    return root
