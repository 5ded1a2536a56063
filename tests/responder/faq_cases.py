"""Caller texts for the FAQ responder tests and benchmark, with the expected topic id.

REAL_ASR_TRANSCRIPTS and PHONE_ASR_TRANSCRIPTS are Whisper-base transcripts of the
synthetic caller clips after the 8 kHz G.711 mu-law telephone path, and CALL_TRANSCRIPTS
come from an end-to-end call through the service. All are copied verbatim (spaces,
punctuation and recognition errors included).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FAQ_PATH = REPO_ROOT / "dialogs" / "faq.yaml"
MESSAGES_PATH = REPO_ROOT / "prompts" / "messages.yaml"

# (text, topic) for the FAQ caller clips as written.
TRUE_TEXTS: tuple[tuple[str, str], ...] = (
    ("信用卡年费是多少？怎么才能免年费？", "annual_fee"),
    ("我想查一下这个月的信用卡账单。", "bill_inquiry"),
    ("信用卡的最低还款额是怎么算的？", "minimum_payment"),
    ("我的新卡怎么激活？", "card_activation"),
    ("积分可以兑换什么礼品？", "points_redemption"),
    ("分期付款的手续费是多少？", "installment_fee"),
    ("我想提高信用额度。", "credit_limit_increase"),
    ("逾期还款会有什么影响？", "late_payment"),
    ("我想修改我的账单地址。", "address_change"),
    ("我的信用卡丢了，帮我挂失。", "lost_card"),
)

# (transcript, topic) from Whisper base on the 8 kHz path, same clips as TRUE_TEXTS.
REAL_ASR_TRANSCRIPTS: tuple[tuple[str, str], ...] = (
    ("信用 卡 年费 账单 还款 账单 还款 账单 还款 账嫌费。", "annual_fee"),
    ("我想查一下这个月的信用卡 账单", "bill_inquiry"),
    ("信用卡的最低 还款额序怎么算人?", "minimum_payment"),
    ("我的心卡怎么激活?", "card_activation"),
    ("积分 可以对换什么力品", "points_redemption"),
    ("分期付款的手续费是多少", "installment_fee"),
    ("我想提高系用额度了。", "credit_limit_increase"),
    ("一切还款会有什么影响", "late_payment"),
    ("我想修改我的账单地址", "address_change"),
    ("我的信用卡丢了 帮我挂失", "lost_card"),
)

# (transcript, topic) from WhisperTranscriber() with its defaults (short window, hotwords)
# on the 8 kHz mu-law path, same clips as the first eight TRUE_TEXTS. Whisper writes
# sound-alikes here: 新用卡 (信用卡), 障单 (账单), 利品 (礼品), 手细费 (手续费),
# 是用 (信用), 遗迄 (逾期).
PHONE_ASR_TRANSCRIPTS: tuple[tuple[str, str], ...] = (
    ("新用卡年费是多少?怎么才能免年费?", "annual_fee"),
    ("我想查一下信用卡障单", "bill_inquiry"),
    ("信用卡最低还款额去怎么算人?", "minimum_payment"),
    ("我的信用卡怎么激活?", "card_activation"),
    ("积分可以对换什么利品", "points_redemption"),
    ("分期付款的手细费是多少", "installment_fee"),
    ("我想提高是用额度了", "credit_limit_increase"),
    ("遗迄还款会有什么影响?", "late_payment"),
)

# (transcript, topic) from a real call through the service, which the character-bigram
# matcher answered below 0.80 (annual_fee 0.796, card_activation 0.628, installment_fee 0.722).
CALL_TRANSCRIPTS: tuple[tuple[str, str], ...] = (
    ("新用卡年费是多少,怎么才能免年费?", "annual_fee"),
    ("我的信卡怎么激活?", "card_activation"),
    ("分期付款的手细费是多少", "installment_fee"),
)

# (text, topic): caller questions with characters swapped for homophones or
# near-homophones, the way Whisper mishears 8 kHz audio or a Southern accent sounds
# (zh/z, sh/s, n/l, ing/in, ü/i). None of the swaps is in asr_fixes.ASR_REPLACEMENTS, so
# only the pinyin signal can recover them.
SOUND_ALIKE_VARIANTS: tuple[tuple[str, str], ...] = (
    ("信用卡年非是多少", "annual_fee"),  # 费 fei -> 非 fei
    ("信用卡连费是多少", "annual_fee"),  # 年 nian -> 连 lian, n/l
    ("怎么才能免年肥", "annual_fee"),  # 费 fei -> 肥 fei
    ("这个月的张蛋多少钱", "bill_inquiry"),  # 账单 -> 张蛋
    ("我想查一下这个月的信用卡脏单", "bill_inquiry"),  # 账 zhang -> 脏 zang, zh/z
    ("最低还宽额怎么算", "minimum_payment"),  # 款 kuan -> 宽 kuan
    ("信用卡的醉低还款额是怎么酸的", "minimum_payment"),  # 最 -> 醉, 算 -> 酸
    ("我的新卡怎么鸡活", "card_activation"),  # 激 ji -> 鸡 ji
    ("新卡怎么基火", "card_activation"),  # 激活 -> 基火
    ("鸡分可以换什么礼品", "points_redemption"),  # 积 ji -> 鸡 ji
    ("积分可以兑换什么里品", "points_redemption"),  # 礼 li -> 里 li
    ("分七付款的手续费是多少", "installment_fee"),  # 期 qi -> 七 qi
    ("分期的收续费怎么算", "installment_fee"),  # 手 shou -> 收 shou
    ("分期付款的手续费四多少", "installment_fee"),  # 是 shi -> 四 si, sh/s
    ("我想提高信用额肚", "credit_limit_increase"),  # 度 du -> 肚 du
    ("我想题高心用额度", "credit_limit_increase"),  # 提 -> 题, 信 -> 心
    ("鱼其还款会有什么影响", "late_payment"),  # 逾期 -> 鱼其
    ("逾期还款会有什么引响", "late_payment"),  # 影 ying -> 引 yin, ing/in
    ("我要挂师", "lost_card"),  # 失 shi -> 师 shi
    ("我的卡丢了要卦失", "lost_card"),  # 挂 gua -> 卦 gua
    ("我想修改我的账单地止", "address_change"),  # 址 zhi -> 止 zhi
    ("账单寄送低址怎么改", "address_change"),  # 地 di -> 低 di
)

# (text, topic): colloquial paraphrases and hand-made ASR-style errors, none of them an
# example question of the knowledge base.
VARIANTS: tuple[tuple[str, str], ...] = (
    ("这张卡一年要交多少年费啊", "annual_fee"),
    ("年费能免掉吗", "annual_fee"),
    ("你们信用卡收不收年费", "annual_fee"),
    ("信用卡年废多少", "annual_fee"),
    ("帮我看看这个月账单多少钱", "bill_inquiry"),
    ("我这个月刷了多少钱", "bill_inquiry"),
    ("我想查张单", "bill_inquiry"),
    ("本月帐单查询", "bill_inquiry"),
    ("最低要还多少钱", "minimum_payment"),
    ("我这个月只想还最低的那部分", "minimum_payment"),
    ("最底还款额是多少", "minimum_payment"),
    ("最低还款 额 咋算的", "minimum_payment"),
    ("卡到手了要怎么激活", "card_activation"),
    ("新办的信用卡怎么开卡啊", "card_activation"),
    ("我的卡还没激活", "card_activation"),
    ("心卡激活", "card_activation"),
    ("我的积分能兑换什么东西", "points_redemption"),
    ("积分换礼品在哪里换", "points_redemption"),
    ("用积分 对换 礼品", "points_redemption"),
    ("积分可以换飞机里程吗", "points_redemption"),
    ("分期要收多少手续费", "installment_fee"),
    ("账单分十二期每期手续费多少", "installment_fee"),
    ("分期的利息高不高", "installment_fee"),
    ("分期手续废怎么算", "installment_fee"),
    ("能不能帮我把额度调高一点", "credit_limit_increase"),
    ("我的额度太低了想提额", "credit_limit_increase"),
    ("怎么申请提升信用额渡", "credit_limit_increase"),
    ("额度不够花了能加吗", "credit_limit_increase"),
    ("我还款晚了两天有没有关系", "late_payment"),
    ("逾期了会不会上征信", "late_payment"),
    ("鱼期还款有什么后果", "late_payment"),
    ("忘了还信用卡了怎么办", "late_payment"),
    ("我的卡找不到了要挂事", "lost_card"),
    ("卡丢了怎么挂失", "lost_card"),
    ("我搬家了要改一下地址", "address_change"),
    ("账单寄送地址要变更", "address_change"),
    ("在国外刷卡收不收货币转换费", "foreign_currency"),
    ("信用卡在ATM取现金要多少手续费", "cash_advance_fee"),
    ("我的交易密码忘记了", "pin_reset"),
    ("每个月几号是还款日", "statement_due_date"),
)

# Turns that other components handle (fraud, money movement, emotion, a request for a
# person, slot values). Written texts first, then their real ASR transcripts.
NOT_FAQ_TEXTS: tuple[str, ...] = (
    "我的卡在迪拜被刷了一笔，可是我人在上海，是不是被盗刷了？",
    "我收到一条短信说我的卡被冻结了，让我点链接，这是不是诈骗？",
    "有一笔交易不是我本人操作的。",
    "我要给我儿子转账五万块钱。",
    "帮我把信用卡里的钱转到我的储蓄卡。",
    "你们这个系统太烂了，我已经打了三次电话了，到底能不能解决？",
    "我真的很着急，我的卡被吞了，明天还要付房租。",
    "我要转人工。",
    "我的新地址是上海市浦东新区世纪大道一百号。",
    "对，没错。",
    "不是，我说错了。",
    "我的卡号后四位是六二八八。",
    "我的卡在迪败被刷了一笔 可是我人在上海 是不是被刷了呢?",
    "我收到一条短信 说我的卡被动结论 让我点链接 这是不是诈骗?",
    "有意比较意不是我本人操作的",
    "我要给我儿子转账 5 万块钱",
    "把信用卡里的前转到我的储蓄卡",
    "你们这个系统太烂了 我已经打了三次电话了 到底能不能解决?",
    "我真的很着急 我的卡被吞了 明天还要付房租",
    "我要转员工",
    "我的心地只是上还是普通心 趋势 激大到100%",
    "不是 我说错名",
    "我的卡号后 塑微系622 拜拜!",
    "今天天气怎么样",
    "喂你好",
    # WhisperTranscriber() defaults on the 8 kHz mu-law path.
    "我的卡在迪败被刷了一比可是我人在上海是不是被盗刷了",
    "我收到一条短信说我的卡被动结论让我点链接这是不是诈骗",
    "有一比教意不是我本人操作的",
    "帮我把信用卡里的前转到我的储蓄卡",
    "你们这个系统太烂了,我已经打了三次电话了,到底能不能解决",
    "我真的很着急我的卡被吞了明天还要付房租",
    "位要我再员工",
    "我的心地只是上还是普通心趋势激大到100%",
    "对没错",
    "不是我说错名",
    "我的卡后后塑微信用",
)
