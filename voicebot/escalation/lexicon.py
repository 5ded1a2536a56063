"""The phrase rules of the text cues, as data.

Each rule has an id (`cue.name`, the id that decisions and logs show) and a regular
expression matched against the corrected caller text (see text.py). Its score in 0..1
says how sure a match alone makes the cue. A match of one of its `unless` patterns that
overlaps the rule's match drops it, which keeps topic questions, advice and negations
out (转账手续费, 防止被盗刷, 人工智能, 我不生气).

In the patterns `.` matches any character except the clause boundary `，`, so a gap
stays inside one clause; `[^\\n]` crosses clause boundaries. The text is Simplified
Chinese, so Cantonese words appear in their Simplified forms (搵 is written 揾).

A rule that needs an actor (我要, 帮我, 给我儿子) fires on a request to do the act and
not on a question about the act: 我要转账 fires, 转账手续费是多少 does not.
"""

from __future__ import annotations

from dataclasses import dataclass

# Scores. A designer's `min_score` per cue and sensitivity (dialogs/escalation.yaml)
# decides which of them lead to a handoff: the defaults hand over at 0.6 and above.
STRONG = 0.9
CLEAR = 0.8
MILD = 0.6
WEAK = 0.5


@dataclass(frozen=True)
class RuleSpec:
    """One phrase rule of a text cue."""

    id: str
    pattern: str
    score: float
    unless: tuple[str, ...] = ()


# Patterns shared by several rules.
HYPOTHETICAL = r"(如果|万一|假如|假设|要是|如果说)[^，]*"
CONDITIONAL = r"[^，]{0,10}的话"
PREVENTION = r"(怎么|怎样|如何|怎么样|怎么才能|如何才能|要怎么)?(防止|避免|预防|防范|防|识别|小心|注意|提防|当心|防御)[^，]{0,8}"
ANTI_FRAUD_TOPIC = r"防诈骗|反诈|防骗|诈骗(宣传|知识|案例|手段)|盗刷险|盗刷(保障|保险)"

NUMBER = r"(\d+(\.\d+)?|[零〇一二两三四五六七八九十百千万亿几]+)"

FRAUD_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "fraud.unauthorised_transaction",
        r"((有)?(一)?(笔|单)(交易|消费|扣款|钱)?.{0,4})?不是我(本人|自己)?(亲自)?(操作|刷|消费|买|做|授权|办|签|用|花)"
        r"|(我|本人)(根本|从来|并|都|也|完全)?(没有|没|未|冇)(有)?(操作|刷|消费|买|做|授权|用|花)过?(这|那|呢|嗰|此)"
        r"|(这|那|呢|嗰)(一)?((笔|单)(交易|消费|钱|账|款|扣款)?|个(交易|消费|扣款))"
        r".{0,6}((没有|没|冇|未)(有)?(操作|刷|消费|买|做|授权|用|花|碌)|不是我|唔系我)"
        r"|唔系我(本人)?(做|碌|刷|买|用|操作|签)"
        r"|冇(做|碌|刷|买|用|操作)过(呢|这|嗰)"
        r"|(不明|陌生|异常|可疑|莫名其妙|莫名|奇怪)(的|嘅)?.{0,2}(交易|扣款|消费|扣费|扣钱)"
        r"|(有人|别人|他人|陌生人|人哋)(用|拿|偷用|盗用|冒用|用咗)?(我的|我张|我)?卡.{0,6}(刷|消费|买|碌|取|支付)",
        STRONG,
        unless=(HYPOTHETICAL, PREVENTION, CONDITIONAL),
    ),
    RuleSpec(
        "fraud.card_misused",
        r"盗刷|盗用|冒用|冒名|被(人|别人)?(偷偷)?刷(了|走|咗)|(畀|俾|被)人(用|碌|刷|盗用|冒用)(咗|了)",
        CLEAR,
        unless=(HYPOTHETICAL, PREVENTION, ANTI_FRAUD_TOPIC, CONDITIONAL),
    ),
    RuleSpec(
        "fraud.card_stolen",
        r"(卡|钱包|手机|包|银包)(被|让|给|畀|俾)(人)?(偷|抢|盗|扒)(了|走|咗)?|被(人)?(偷|抢|扒)(了|走)|偷咗|被盗|失窃",
        STRONG,
        unless=(HYPOTHETICAL, PREVENTION, ANTI_FRAUD_TOPIC, r"被盗刷", CONDITIONAL),
    ),
    RuleSpec(
        "fraud.phishing_message",
        r"诈骗|骗子|被骗|骗了|骗我|呃钱|钓鱼|假冒|冒充|假客服|假网站"
        r"|可疑.{0,2}(短信|电话|链接|网站)|陌生(链接|网站)"
        r"|(收到|接到|来了)(一条|一个|一封|个|条|封|啲)?.{0,4}(短信|信息|电话|邮件|微信)[^\n]{0,16}"
        r"(链接|冻结|中奖|退款|异常|点击|升级|提额|注销|安全账户|让我(发|回复|告诉|提供|输入|报)[^\n]{0,4}(验证码|密码))"
        r"|(点|点击|打开|点开|撳|按)(了|咗)?.{0,3}链接",
        STRONG,
        unless=(PREVENTION, ANTI_FRAUD_TOPIC, r"(没|没有|冇|未)(有)?(收到|接到)"),
    ),
    RuleSpec(
        "fraud.code_requested",
        r"(有人|陌生人|对方|他|她|佢|自称|冒充|假|一个人|那个人|个人)[^\n]{0,12}(问|要|索取|索要|让我|叫我|要我|骗|攞)"
        r"[^\n]{0,8}(验证码|动态码|动态密码|密码|cvv|安全码|短信码|校验码|otp)"
        r"|(验证码|动态码|密码|cvv|安全码|otp).{0,6}(告诉|给|报|发|讲)(了|咗)?(他|她|佢|对方|别人|陌生人|那个人)",
        STRONG,
        unless=(PREVENTION,),
    ),
    RuleSpec(
        "fraud.card_cloned",
        r"(被|让|给|畀|俾)(人|别人)?(复制|克隆|盗录|侧录|泄露|泄漏)|(复制|克隆|伪造)(了|的)?(我的?)?卡|盗卡",
        STRONG,
        unless=(HYPOTHETICAL, PREVENTION),
    ),
)

_TRANSFER_VERB = r"(转账|转钱|转款|汇款|汇钱|打款|打钱|过数|转一笔|汇一笔)"
_FEE_QUESTION = r"(转账|转钱|汇款|汇钱|打钱|过数|取现|提现|套现)(的|有|要|收)?.{0,2}(手续费|费用|收费|费率|限额|额度|利息)"
_TIMING_QUESTION = r"(转账|转钱|汇款|汇钱|打钱|过数).{0,8}(多久|多长时间|几天|到账)"
# The caller requesting the act: 我要, 我想, 帮我, 麻烦你, 唔该. A bare 要 or 能 is left out
# because 还款要转账吗 and 信用卡能转账吗 are questions about the act.
_ACTOR = r"((我|本人|我们|我哋)(现在|今天|想)?(要|想|想要|需要|得|打算)|帮我|麻烦(你|您)?(帮我)?|请(你|您)?帮(我)?|唔该(你)?)(帮我)?"

MONEY_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "money.transfer_request",
        _ACTOR + r"((给|往|向|俾|畀).{1,8}?)?" + _TRANSFER_VERB
        + r"|(给|往|向|帮|俾|畀).{1,8}" + _TRANSFER_VERB
        + r"|" + _TRANSFER_VERB + r"(俾|给|到).{1,6}"
        + r"|(" + _ACTOR + r"|(给|往|向|俾|畀).{1,8})(转|汇|打)" + NUMBER + r"(万|千|百|块|元|蚊)",
        CLEAR,
        unless=(HYPOTHETICAL, CONDITIONAL, _FEE_QUESTION, _TIMING_QUESTION),
    ),
    RuleSpec(
        "money.off_card",
        r"(信用卡|卡)(里|里面|上|入面|度)?(的|嘅)?.{0,3}(转到|转去|转入|转进|转出|转走|提出|取出|提现|套现|转过去|转返)"
        r"|把.{0,10}(转到|转去|转入|转进|转过去).{0,10}(储蓄卡|借记卡|银行卡|账户|户口|支付宝|微信|卡)"
        r"|" + _ACTOR + r"(套现|取现|提现|预借现金|取钱|攞钱|提取现金)"
        r"|(套现|取现|提现|预借现金|取钱|攞钱)" + NUMBER + r"(万|千|百|块|元|蚊)",
        STRONG,
        unless=(HYPOTHETICAL, CONDITIONAL, _FEE_QUESTION, r"(信用卡|卡)(里|里面|上)?(的)?(积分|里程|额度|优惠券)"),
    ),
)

# A large amount counts as money movement only with one of these verbs in the turn.
MOVEMENT_VERBS = (
    r"转账|转帐|转给|转到|转去|转出|汇款|汇给|汇到|打给|打到|打款|打钱|付给|取出|取现|提现|套现|过数|转钱"
    r"|(转|汇)(\d|[一二两三四五六七八九十百千万])"
)
AMOUNT = NUMBER + r"(万|千|k|w)?(块钱|块|元|人民币|美元|美金|港币|港元|蚊|刀)|" + NUMBER + r"(万|千)"

EMOTION_NEGATION = r"(不|没|没有|别|并不|并没有|唔|冇|不要|不用|不会|唔使)(太|很|是|会|怎么|好|那么|有|系)?"

EMOTION_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "emotion.anger",
        r"生气|愤怒|气死|气愤|火大|恼火|受够|忍无可忍|岂有此理|太过分|欺人太甚|坑人|嬲|激死|烦死|太烂|烂透|好烂|很烂"
        r"|什么破|破系统|太差劲|差劲|太垃圾|气人|搞什么鬼|搞乜鬼|发火",
        CLEAR,
        unless=(
            EMOTION_NEGATION + r"(生气|愤怒|嬲|气|火大|恼火|发火)",
            r"(信号|网络|声音|音质|线路)[^，]{0,3}(太差|差劲|好烂|很烂|太烂)",
        ),
    ),
    RuleSpec(
        "emotion.insult",
        r"垃圾|白痴|蠢货|废物|混蛋|王八|他妈|妈的|tmd|傻逼|傻b|去死|滚开|滚蛋|你滚|扑街|顶你个肺|冚家铲|屌",
        STRONG,
        unless=(r"垃圾(短信|邮件|电话|信息|广告)",),
    ),
    RuleSpec(
        "emotion.annoyance",
        r"无语|离谱|搞什么|搞乜|烦|麻烦死|服了|太慢|好慢|等了(好|很)?久|浪费(我的)?时间|不耐烦",
        MILD,
        unless=(EMOTION_NEGATION + r"(烦|麻烦)", r"麻烦(你|您|帮|了|晒)", r"不好意思", r"(烦|麻烦)请"),
    ),
    RuleSpec(
        "emotion.distress",
        r"着急|急死|急用|急得|好急|很急|急啊|崩溃|绝望|害怕|好怕|吓死|哭|救命|心慌|慌了|走投无路|担心死|怎么办啊|点算啊|点算好",
        CLEAR,
        unless=(EMOTION_NEGATION + r"(着急|急|慌|害怕|怕|担心)",),
    ),
    RuleSpec(
        "emotion.urgency",
        r"(今天|明天|马上|立刻|现在|今晚|听日|而家)(就|还|仲)?(要|得|必须|一定要)(付|交|还|用|买|缴)",
        WEAK,
    ),
    RuleSpec(
        "emotion.complaint",
        r"投诉|举报|曝光|找媒体|12315|银保监|金融监管|消协|消费者协会|告你们|告你哋|起诉|差评|找律师",
        CLEAR,
        unless=(EMOTION_NEGATION + r"(投诉|举报|起诉)",),
    ),
    RuleSpec(
        "emotion.repeat_call",
        r"(打|打咗|打了)(\d+|[两三四五六七八九十几好多无数]+)(次|遍|回|通|轮|个)(电话)?"
        r"|第(\d+|[二三四五六七八九十几])(次|回|遍)(打|来电|致电|打电话)"
        r"|(已经|都)?(打|问|说|讲)(了|咗)?(好多|很多|无数|多少|几|好几)(次|遍)"
        r"|又(打|打来|来电)了?"
        r"|(一直|还|始终|到现在都|仲)(没|没有|冇|未)(人)?(解决|处理|回复|回音|答复)"
        r"|到底(能不能|能唔能|可不可以|有没有人|有没有)(解决|处理|帮)",
        CLEAR,
    ),
)

HUMAN_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "human.agent_request",
        r"转人工|转接人工|人工服务|人工客服|人工坐席|人工台|找人工|要人工|接人工|叫人工|转真人|真人(客服|服务|接听)"
        r"|(要|找|转|接|请|叫|揾)(一个|个)?(真人|活人)|(同|跟|和|与)(个)?真人"
        r"|接线员|接线生|话务员|坐席|(帮我|给我|帮忙)转接|转接一下"
        r"|(转|找|叫|要|请|接|揾|让)(你们|你哋)?(的|嘅)?(经理|主管|领导|负责人|值班经理)"
        r"|(转|接|找|要|请|揾)(一个|个)?(客服人员|客服代表|人工|客服)"
        r"|(跟|和|同)(一个|个)?(人|活人|真人)(说话|讲话|讲|说|倾|聊)"
        r"|不要(跟|和|同)?(机器人|机器)|机器人(听不懂|没用|不行)",
        STRONG,
        unless=(
            r"人工(智能|费|成本|审核|审批|核实|处理|时间)",
            r"(不|不用|不要|无需|不需要|别|唔使|唔好)(转|找|要)?(人工|真人|经理|客服)",
            r"(人工|客服|经理|坐席)[^，]{0,4}(几点|时间|电话是|电话多少|号码|上班|下班|工作时间)",
            HYPOTHETICAL,
        ),
    ),
)

# Places for the location-mismatch cue: name to (canonical name, True when in mainland China).
PLACES: dict[str, tuple[str, bool]] = {
    "迪拜": ("迪拜", False), "阿联酋": ("迪拜", False),
    "香港": ("香港", False), "澳门": ("澳门", False), "台湾": ("台湾", False), "台北": ("台湾", False),
    "日本": ("日本", False), "东京": ("日本", False), "大阪": ("日本", False),
    "韩国": ("韩国", False), "首尔": ("韩国", False),
    "泰国": ("泰国", False), "曼谷": ("泰国", False), "新加坡": ("新加坡", False),
    "马来西亚": ("马来西亚", False), "吉隆坡": ("马来西亚", False), "越南": ("越南", False),
    "美国": ("美国", False), "纽约": ("美国", False), "洛杉矶": ("美国", False),
    "英国": ("英国", False), "伦敦": ("英国", False), "法国": ("法国", False), "巴黎": ("法国", False),
    "德国": ("德国", False), "意大利": ("意大利", False), "俄罗斯": ("俄罗斯", False),
    "澳大利亚": ("澳大利亚", False), "悉尼": ("澳大利亚", False), "加拿大": ("加拿大", False),
    "国外": ("国外", False), "境外": ("国外", False), "海外": ("国外", False), "外国": ("国外", False),
    "上海": ("上海", True), "北京": ("北京", True), "深圳": ("深圳", True), "广州": ("广州", True),
    "杭州": ("杭州", True), "南京": ("南京", True), "成都": ("成都", True), "重庆": ("重庆", True),
    "武汉": ("武汉", True), "天津": ("天津", True), "西安": ("西安", True), "苏州": ("苏州", True),
    "国内": ("国内", True), "内地": ("国内", True), "大陆": ("国内", True),
}
# Canonical names that stand for a region rather than one city.
ABROAD = "国外"
HOME_COUNTRY = "国内"

# A place that the corrector may restore from a sound-alike spelling (迪败 to 迪拜). Names
# that sound like everyday words are left out: 上海 sounds like 伤害 and 美国 like 没过.
PLACE_TERMS: tuple[str, ...] = tuple(name for name in PLACES if name not in {"上海", "美国", "国内", "外国", "大陆"})

# Words the sound-alike corrector restores (text.SoundAlikeCorrector). Each is a word the
# rules above look for that Whisper writes with a sound-alike character on 8 kHz audio.
TERMS: tuple[str, ...] = (
    "盗刷", "盗用", "冒用", "转人工", "人工", "交易", "一笔", "冻结", "诈骗", "链接", "短信", "验证码",
    "转账", "汇款", "储蓄卡", "信用卡", "投诉", "着急", "解决", "经理", "真人", "本人", "操作",
    "套现", "取现", "提现", "钓鱼", "消费",
    *PLACE_TERMS,
)
