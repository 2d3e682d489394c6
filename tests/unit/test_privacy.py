from producers.privacy import MASK, caller_hash, mask_text


def test_phone_and_id_numbers_in_free_text_are_masked():
    text = "电话13800138000，另一个+86 139-0013-9000，座机0531-86123456，身份证37010219900101123X，楼号12栋"
    masked = mask_text(text)
    for secret in ("13800138000", "139-0013-9000", "0531-86123456", "37010219900101123X"):
        assert secret not in masked
    assert masked.count(MASK) == 4
    assert "楼号12栋" in masked  # ordinary numbers stay


def test_caller_hash_is_keyed_and_normalized():
    a = caller_hash("138 0013 8000", b"k1")
    assert a == caller_hash("+86-13800138000", b"k1")
    assert a != caller_hash("13800138000", b"k2")
    assert a is not None and "13800138000" not in a and len(a) == 64
    assert caller_hash("", b"k1") is None and caller_hash(None, b"k1") is None
