from pathlib import Path

from tests.client_support import in_process, signed_in, tree_of
from vault_client.syncer import Syncer


async def test_two_way(app, tmp_path: Path) -> None:
    t = in_process(app)
    a = await signed_in("http://node.test", tmp_path / "a.sqlite3", transport=t)
    b = await signed_in("http://node.test", tmp_path / "b.sqlite3", transport=t)
    da, db_ = tmp_path / "A", tmp_path / "B"
    da.mkdir()
    db_.mkdir()
    (da / "x.txt").write_bytes(b"x" * 1000)
    (da / "sub").mkdir()
    (da / "sub" / "y.bin").write_bytes(b"y" * 300000)
    (da / "empty").mkdir()
    sa, sb = Syncer(a, da), Syncer(b, db_)
    r = await sa.sync_once()
    print(r)
    r = await sb.sync_once()
    print(r)
    assert tree_of(da) == tree_of(db_)
    assert (db_ / "empty").is_dir()
    # rename on B, edit on A
    (db_ / "x.txt").rename(db_ / "x2.txt")
    (da / "sub" / "y.bin").write_bytes(b"z" * 5000)
    print(await sb.sync_once())
    print(await sa.sync_once())
    print(await sb.sync_once())
    print(await sa.sync_once())
    assert tree_of(da) == tree_of(db_), (tree_of(da).keys(), tree_of(db_).keys())
    assert set(tree_of(da)) == {"x2.txt", "sub/y.bin"}
    # conflict: both edit
    (da / "x2.txt").write_bytes(b"A edit")
    (db_ / "x2.txt").write_bytes(b"B edit")
    print(await sa.sync_once())
    rb = await sb.sync_once()
    print(rb)
    assert rb.new_conflicts
    print(sb.conflicts())
    await sb.resolve(rb.new_conflicts[0], "keep_both")
    print(await sb.sync_once())
    print(await sa.sync_once())
    print(await sb.sync_once())
    print(tree_of(da), tree_of(db_))
    assert tree_of(da) == tree_of(db_)
    # delete on A
    (da / "sub" / "y.bin").unlink()
    print(await sa.sync_once())
    print(await sb.sync_once())
    assert tree_of(da) == tree_of(db_)
    await a.aclose()
    await b.aclose()
