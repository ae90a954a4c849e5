"""Secret and PII detection (DLP) for every inbound message, and a lint for agents' replies.

This module owns three things, all pure functions over a ``str``:

- ``scan``: find secrets (BIP-39 seed phrases, private keys, passwords, 2FA codes) and PII
  (mainland ID cards, bank cards, phone numbers, email addresses) in free text. It runs on
  every inbound message (chat, email, web form, API) before anything is stored, so every
  pattern is precompiled at import, every regex is linear-time (no nested ambiguous
  quantifiers), and the costly checks only run on the few spans a cheap regex proposes.
- ``mask_secrets`` / ``mask_for_display``: the two redactions. Secrets are replaced before
  storage; PII is stored but shown partially masked.
- ``lint_outbound``: an agent's reply that asks the contact for a secret, or moves the
  conversation to an off-platform contact (WhatsApp, Telegram, WeChat, QQ), is a problem.

Offsets are Python ``str`` indices into the original text (code points, so an emoji counts
as one). The BIP-39 wordlists come from the ``mnemonic`` package; nothing is copied here.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial

import base58
from mnemonic import Mnemonic

__all__ = [
    "PII_KINDS",
    "SECRET_KINDS",
    "Finding",
    "FindingKind",
    "OutboundProblem",
    "lint_outbound",
    "mask_for_display",
    "mask_pii_value",
    "mask_secrets",
    "scan",
]


class FindingKind(StrEnum):
    SEED_PHRASE = "seed_phrase"
    PRIVATE_KEY = "private_key"
    PASSWORD = "password"  # noqa: S105  # the kind's name, not a password
    OTP_CODE = "otp_code"
    ID_CARD = "id_card"
    BANK_CARD = "bank_card"
    PHONE = "phone"
    EMAIL = "email"


SECRET_KINDS: frozenset[FindingKind] = frozenset(
    {
        FindingKind.SEED_PHRASE,
        FindingKind.PRIVATE_KEY,
        FindingKind.PASSWORD,
        FindingKind.OTP_CODE,
    }
)
PII_KINDS: frozenset[FindingKind] = frozenset(FindingKind) - SECRET_KINDS


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span; ``start``/``end`` index the ORIGINAL text (``text[start:end]``)."""

    kind: FindingKind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class OutboundProblem:
    """Something an agent's reply must not contain.

    ``code`` is ``asks_for_secret`` (``kind`` is the secret's ``FindingKind``) or
    ``off_platform_contact`` (``kind`` is ``whatsapp``, ``telegram``, ``wechat`` or ``qq``).
    """

    code: str
    kind: str
    start: int
    end: int
    message: str


SECRET_MARKERS: dict[FindingKind, str] = {
    FindingKind.SEED_PHRASE: "[已屏蔽：助记词]",
    FindingKind.PRIVATE_KEY: "[已屏蔽：私钥]",
    FindingKind.PASSWORD: "[已屏蔽：密码]",
    FindingKind.OTP_CODE: "[已屏蔽：验证码]",
}

# ---------------------------------------------------------------------------------------
# Shared character classes. Digits include the full-width forms a Chinese IME produces
# (１２３４５６); letters stay ASCII on purpose: Python's \w and \b treat CJK as word
# characters, which would make "手机13812345678" look like one word.
_D = "[0-9\uff10-\uff19]"
_NOT_ALNUM_BEFORE = "(?<![0-9A-Za-z\uff10-\uff19])"
_NOT_ALNUM_AFTER = "(?![0-9A-Za-z\uff10-\uff19])"
_B58 = "[1-9A-HJ-NP-Za-km-z]"
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９ＸｘX", "0123456789xxx")


def _digits(s: str) -> str:
    """The ASCII digits of a matched number (separators dropped, full-width folded)."""
    return "".join(ch for ch in s.translate(_FULLWIDTH_DIGITS) if ch in "0123456789x")


class _Spans:
    """Sorted, non-overlapping [start, end) spans with O(log n) queries.

    Keeps every "does this overlap / is a cue near" question logarithmic, so a 100k-char
    message with thousands of candidates stays linear-ish instead of quadratic.
    """

    __slots__ = ("ends", "starts")

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in spans:  # callers pass them sorted and non-overlapping
            self.starts.append(start)
            self.ends.append(end)

    def __bool__(self) -> bool:
        return bool(self.starts)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self.starts, end) - 1  # the last span starting before ``end``
        return i >= 0 and self.ends[i] > start

    def add(self, start: int, end: int) -> None:
        i = bisect_left(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)

    def within(self, start: int, end: int) -> list[tuple[int, int]]:
        """The spans overlapping [start, end), in order."""
        i = bisect_right(self.ends, start)
        found = []
        while i < len(self.starts) and self.starts[i] < end:
            found.append((self.starts[i], self.ends[i]))
            i += 1
        return found

    def last_end_at_or_before(self, pos: int) -> int | None:
        i = bisect_right(self.ends, pos) - 1
        return self.ends[i] if i >= 0 else None


# ---------------------------------------------------------------------------------------
# BIP-39 wordlists, from the mnemonic package.
_EN_WORDS: list[str] = Mnemonic("english").wordlist
_ZH_S: list[str] = Mnemonic("chinese_simplified").wordlist
_ZH_T: list[str] = Mnemonic("chinese_traditional").wordlist
_EN_INDEX: dict[str, int] = {w: i for i, w in enumerate(_EN_WORDS)}
_ZH_S_INDEX: dict[str, int] = {w: i for i, w in enumerate(_ZH_S)}
_ZH_T_INDEX: dict[str, int] = {w: i for i, w in enumerate(_ZH_T)}
# Both Chinese lists are index-aligned (the traditional list is the simplified one
# converted), and ordered by character frequency. The alignment gives a free
# traditional→simplified folding for the common-word check; the order gives a frequency
# rank for the prose score below.
_ZH_RANK: dict[str, int] = {**_ZH_T_INDEX, **_ZH_S_INDEX}
_ZH_FOLD: dict[str, str] = {t: s for s, t in zip(_ZH_S, _ZH_T, strict=True)}
_VALID_WORD_COUNTS = (24, 21, 18, 15, 12)

# Prose score: mean log-likelihood ratio per character of "ordinary Chinese text"
# (Zipf over the frequency rank) against "a BIP-39 phrase" (uniform over 2,048). Measured
# on 11k real customer-service questions, 88 % of their 12+ runs of wordlist characters
# score above 0.5 and 66 % above 0.8; a generated 12-word phrase averages about -0.6 and
# scores above 0.5 about twice in 10,000, above 0.8 practically never. The common-word
# check below catches most of the prose runs that score low.
_ZIPF_SHIFT = 20
_ZH_PROSE_MAX = 0.5
_ZH_PROSE_MAX_WITH_CUE = 0.8
_ZIPF_NORM = sum(1.0 / (r + _ZIPF_SHIFT) for r in range(2048))
_ZH_PROSE_LR: dict[str, float] = {
    ch: math.log(2048.0 / ((rank + _ZIPF_SHIFT) * _ZIPF_NORM)) for ch, rank in _ZH_RANK.items()
}

# Common two-character words made only of wordlist characters: the exchange's own
# vocabulary first, then the ~1,150 most frequent such words of jieba's dictionary (MIT).
# A run of wordlist characters that contains one of these is prose, not a
# generated phrase (a random 12-word phrase contains one about 0.3 % of the time).
_ZH_COMMON_WORDS_RAW = (
    # Chat: what a contact writes around a pasted phrase ("…请帮我找回").
    "帮我请帮我的你的您的他的给我是我我是我在我要我想了吗好的为啥能否您好多久还没没到到了"
    "了吧丢了忘了会不有没我了我把把我我用用我我有在哪哪个这是那是马上赶紧尽快急急快点"
    "提币充币充值钱包密码验证交易冻结解冻被盗找回资产客服平台合约理财手续审核实名认证身份谷歌"
    "短信邮箱登录注册提现余额订单撤单挂单买入卖出法币商家申诉投诉退款到期收益划转链上区块网络"
    "节点矿工还款借款额度分期扣款付款收款支付信用银行现金利息开通关闭显示提示失败成功处理帮忙"
    "麻烦谢谢你好请问怎么什么怎样多少为何哪里一下一直还是已经没有不能可以能不是不现在今天昨天"
    "时候小时分钟手机电话号码信息问题解决联系回复等待急用着急损失安全风险异常限制提醒通知操作"
    "设置修改重置忘记记得输入错误正确无法不了收到发送发现看到查看记录明细流水充进转出转入提出"
    "提交取消撤销恢复导入导出备份下载更新版本系统页面界面点击官方活动奖励邀请好友一个中国我们"
    "他们国家发展工作这个主要进行地方这样全国经济这些不是公司人民社会知道这种起来地区如果开始"
    "技术重要美国成为因为通过研究文化企业北京历史世界其中一些时间生产情况代表决定湖北关系领导"
    "生活一种可能出来学生以及石首一般同时认为由于所以不同这里学院两个作为会议但是部分需要管理"
    "方面市场组织工业建设形成其他出现许多日本之间一定具有城市以上政治人们记者国际规定机关武汉"
    "虽然根据法律影响发生包括使用中心教育要求政府因此人口建立参加产品而且一样面积各种我国作用"
    "皇帝必须行政编辑职业制度你们以后说道世纪为了应该之一之后主席有关组成民族基本增长自然大学"
    "如何政体各级人员计划不会产生时期最后一次表示机构当时大家特别改革长江那么这么东西能力革命"
    "基础还有得到进入运动目前对于过程方法举行群众第一单位如此孩子所有资源过去不过条件学校提高"
    "工程环境提供方式百科报告或者下来军事部门分别十分上海完成一切那些最大然后农业经过专业准备"
    "增加获得旅游一声觉得一起理论非常中央比较表现价值科技完全亿元有些存在达到内容实行思想事情"
    "实现甚至任务选举形式原来有人突然不断咱们变化直接心中战争可是不知政策不要资本继续年代期间"
    "位于任何权力那个执行先生建筑能够称为结构一点成立英国统一先进结果投资后来水平保护主任关于"
    "负责制定艺术利用于是学习合作科学项目不敢几个那里公里服务精神人大全省当然个人超过重点很多"
    "原因及其公民希望新闻设计相关国内分布最高部队它们集团重大采用回来范围引起实际其实不仅取得"
    "丰富农民整个为主了解价格甚么地位这时劳动按照控制目标基地农村传统受到全部法国比赛军队土地"
    "规模眼睛左右选择批准身上专家分析统治加强不到铁路百度每年告诉支持交通明白本级作战时代皇上"
    "实施只要办法随着之中心里终于大量人物共同下去来说严重词条接受收入以来城邦声音意见过来保持"
    "今日一条另外坚持工人汽车而是敌人商品说话改变先后力量事业看见开发战略标准是否出去今年报道"
    "程度平均消息独立注意机会父亲这次此外经验采取喜欢根本领域具体几乎干部印度如今大会不可兄弟"
    "德国阶段感到宪法似乎原则真正法规斗争人类目的造成一位反对相同儿子以前众人建议迅速全面正是"
    "明显就是欧洲首先作品集中正式朋友第二召开材料帮助飞机委员行动保证现象特点现代资料同志行为"
    "结束介绍只见胜利认识人数姑娘积极家庭之前更加回答那样武器应用市长来到设立产业公路人才意义"
    "台湾容易长期一句大道扩大官员调整考虑联合并且自由仍然拥有民主专门附近一天师父结合清楚说明"
    "稳定古代三个此时物质利益然而很大不少中学调查开放人家重新广泛分为知识别人综合出口动物速度"
    "总理脸上用于设备女人股东作出措施展开通常电子方向导弹平民行业货币特色完善地理功能香港巨大"
    "发表性质母亲质量命令和平监督一年身体面前武功位置体系逐渐指出安排训练权利考试指挥却是指导"
    "除了发布从而感觉努力机场业务植物同样状态二人书记治疗一阵所谓这位反应语言忽然当年以下找到"
    "青年宣布离开困难事件实在见到装备某些其它问道万元平原经营多年苏联往往广场解释队伍因素教授"
    "医院男人双方减少考生当地多种经常各地生物海军南京真是心想外国财产全市本来两种有效尤其一边"
    "用户方案进攻机械参与充分从事尽管特殊又称一块手段生命便是体育居民生长立即内部简单一片数量"
    "有时开展文学进来决议属于也许气候一只来自还要相信确定投入一面普通看着公元去年文章手中心理"
    "女儿封建图片创造总统促进大型带来教师竟然较大看来若干每个反映每天食品坐在文明相当资金变成"
    "放在毫米中间夫人相对大陆职权西方不再导致对方应当讨论即使金融爱国证明制造构成老师担任区域"
    "一座院长家里曾经保障创作强调连续运输看看主张商业高速真的只能贸易天下不得境内体制因而例如"
    "财政肯定成绩音乐一件建成回去难道接着以为处于大臣高度复杂社区身子回到地面分子意思总是东北"
    "销售弟子未来重视等等良好压力到底各个最终战斗航空之下一级里面数学毕业竞争宗教比例适应健康"
    "她们出版故事责任面对将军粮食政权各国类型发挥听说南北立刻亚洲正常女子培养就业大小明确优势"
    "好像一场至少人士晚上确实特征贡献实验高级想到关键一眼难以周围样子本报一张相互部长身边广州"
    "三年之外蒙古发出只有比如理解刚才不足南部程序加上西北父母一中适当留下研制省级发达东部品种"
    "愿意道路类似空军行使细胞空间形势西部小说妇女股份维护公布名称只好检查化学矛盾儿童任期本身"
    "规划状况实践一家成长需求多次分配一致西南贵族既然一时高兴美元全体统计事务体现名字始终产量"
    "长安最近英雄同意从此一步海拔掌握普遍宜昌攻击招生天然不错亲自相应一旦观点实力中部听到再次"
    "更是突出条例全球经历进步上述绝对抗日优秀至于河流发动审议计算数据关注女性职工必要朝廷表明"
    "不肯主持常常遇到在于消费欢迎想起日子条约协议公开现实武昌强烈早已的话衣服河南太阳广大正在"
    "态度很快交流不好万吨森林前面显然有所千米破坏双手江南阅读工资上面纷纷北部种类无论深入推进"
    "石油进去地上效果团体核心年轻电影纺织形象果然意识常务规律显得平等山东加工只是两侧列为解放"
    "加入逐步担心表面电视下降工具第三网站制作设施天津成果各项预算紧张势力记载外交众多一把年底"
    "文物宣传日常一名高中令人严格不管满足推动下午地下随后认真大声生于明代成员创新遭到不久持续"
    "培训数字游客试验阶级似的发射文字天门来看城楼公园空中软件事实习惯地球一半刚刚手里武装不但"
    "任免不想距离永远年间互相妻子一段妈妈眼前元年对象四个听见变得彻底毕竟快速朝鲜临时一批利润"
    "多数那时路线其余划分唯一坦克尚书概念来源降低充满四大慢慢老人符合小姐哲学轻轻北平老板这件"
    "同学校名美军山地那种率领录取矿产当下别的小龙几天伸手各自五年自身判断哥哥失去危机后面配合"
    "大事增强金属卫生成本文件加以丈夫财富"
)
_ZH_COMMON_PAIRS: frozenset[str] = frozenset(
    _ZH_COMMON_WORDS_RAW[i : i + 2] for i in range(0, len(_ZH_COMMON_WORDS_RAW), 2)
)


def _bip39_checksum_ok(indices: Sequence[int]) -> bool:
    """BIP-39: the last n/3 bits of the phrase are the first bits of SHA-256(entropy)."""
    n = len(indices)
    if n not in _VALID_WORD_COUNTS:
        return False
    value = 0
    for index in indices:
        value = (value << 11) | index
    checksum_bits = n // 3
    entropy_bytes = (n * 11 - checksum_bits) // 8
    entropy = (value >> checksum_bits).to_bytes(entropy_bytes, "big")
    expected = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    return expected == value & ((1 << checksum_bits) - 1)


def _zh_checksum_ok(chars: Sequence[str]) -> bool:
    for index in (_ZH_S_INDEX, _ZH_T_INDEX):
        if all(ch in index for ch in chars) and _bip39_checksum_ok([index[ch] for ch in chars]):
            return True
    return False


# ---------------------------------------------------------------------------------------
# Labels: the nearest label before a number decides what the number is ("订单号 123456" is
# an order id, "验证码 123456" is a 2FA code, "私钥 <64 hex>" is a key, "TxID <64 hex>" a
# transaction). English words get ASCII boundaries so "fluid" does not contain "uid".
def _en(words: str) -> str:
    return f"(?<![A-Za-z])(?:{words})(?![A-Za-z])"


_Trie = dict[str, "_Trie"]


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex for many literal words, factored by prefix.

    ``re`` tries the alternatives of ``a|b|c`` one after another at every position; a
    prefix-factored pattern tries one branch per first character, and lets ``re`` skip
    positions whose character starts no word. Longest match wins at each position.
    """
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: _Trie) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


# Labels, lower-case. English phrases also match without a space or with "_" / "-".
_LABEL_SPECS: dict[str, tuple[str, str]] = {
    "key": (
        "私钥 私鑰 秘钥 祕鑰 密钥 密鑰 导出 導出 导入 導入",
        "private key, priv key, privkey, secret key, export, exported, import, imported, "
        "keystore, wif",
    ),
    "txid": (
        "哈希 交易id 交易号 交易號 区块浏览器 區塊瀏覽器 链上 鏈上 转账记录 轉賬記錄 提币记录 "
        "提幣記錄 充值记录 充值記錄 交易记录 交易記錄",
        "txid, tx id, tx hash, tx, hash, transaction, transaction hash, transaction id, "
        "etherscan, bscscan, tronscan, solscan, explorer",
    ),
    "order": (
        "订单 订单号 訂單 訂單號 单号 單號 工单 工單 流水号 流水號 委托",
        "order, order id, order no, order no., order number, order #, ticket, ref, reference",
    ),
    "uid": (
        "uid 用户id 用户编号 用戶編號 会员号 會員號 账户id 邀请码 邀請碼",
        "uid, user id, account id, invite code, referral code",
    ),
    "otp": (
        "谷歌验证码 谷歌驗證碼 谷歌验证器 谷歌验证 谷歌驗證 谷歌码 谷歌碼 短信验证码 短信驗證碼 "
        "邮箱验证码 郵箱驗證碼 手机验证码 手機驗證碼 身份验证器 動態驗證碼 动态验证码 二次验证 "
        "二次验证码 双重验证 双重验证码 两步验证 两步验证码 二步验证 二步验证码 验证码 驗證碼 "
        "校验码 校驗碼 动态码 動態碼 动态口令 動態口令 短信码 短信碼 安全码 ga码 ga碼 ga验证码 "
        "2fa码 2fa验证码",
        "ga, ga code, 2fa, 2fa code, two factor, two factor code, otp, totp, google auth, "
        "google authenticator, google authenticator code, google code, authenticator, "
        "authenticator code, verification code, security code, auth code, one time code, "
        "one time password, sms code",
    ),
    "amount": (
        "金额 金額 余额 餘額 数量 數量 价格 價格 单价 ¥ ￥ $",
        "amount, balance, total, price, sum",
    ),
    "time": ("时间戳 時間戳 时间 時間 日期", "timestamp, time, date"),
    "phone": (
        "手机号码 手机号 手机 手機號碼 手機號 手機 电话 電話",
        "phone, mobile, tel, whatsapp",
    ),
    "card": (
        "银行卡 銀行卡 卡号 卡號 信用卡 借记卡 借記卡 储蓄卡 儲蓄卡 银联 銀聯",
        "card, visa, mastercard, amex",
    ),
    "id": (
        "身份证 身份证号 身份证号码 身份證 身份證號 身份證號碼 证件号 证件号码 證件號 證件號碼",
        "id card, id no, id no., id number",
    ),
}


def _label_words() -> dict[str, str]:
    words: dict[str, str] = {}
    for category, (zh, en) in _LABEL_SPECS.items():
        for word in zh.split():
            words[word] = category
        for phrase in en.split(","):
            parts = phrase.split()
            for sep in (" ", "", "_", "-") if len(parts) > 1 else ("",):
                words[sep.join(parts)] = category
    return words


_LABEL_CATEGORY = _label_words()
_LABEL_RE = re.compile(_trie_pattern(_LABEL_CATEGORY))


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _labels(text: str, lo: int, hi: int) -> list[tuple[int, str]]:
    """(end offset, category) of each label in text[lo:hi], in order.

    English labels must stand alone ("uid" is not in "fluid").
    """
    window = text[lo:hi].lower()
    if len(window) != hi - lo:  # a rare character whose lower case is longer
        window = text[lo:hi]
    found = []
    for m in _LABEL_RE.finditer(window):
        word = m.group()
        if _ascii_letter(word[0]):
            before = window[m.start() - 1] if m.start() else (text[lo - 1] if lo else " ")
            if _ascii_letter(before):
                continue
        if _ascii_letter(word[-1]) and m.end() < len(window) and _ascii_letter(window[m.end()]):
            continue
        found.append((lo + m.end(), _LABEL_CATEGORY[word]))
    return found


def _label_before(text: str, pos: int, window: int) -> str | None:
    """Category of the label nearest before ``pos`` (ending at most ``window`` chars back)."""
    found = _labels(text, max(0, pos - window - 12), pos)
    return found[-1][1] if found and found[-1][0] >= pos - window else None


def _label_after(text: str, pos: int, window: int) -> str | None:
    found = _labels(text, pos, min(len(text), pos + window))
    return found[0][1] if found else None


# A number followed by a unit or a currency is an amount ("0.5 BTC", "1,000 USDT", "30元").
_UNIT_AFTER_RE = re.compile(
    r"\s?(?:[元块圆塊个個枚份张張%％万萬亿億千次天年笔筆]|美元|美金|"
    + _en(r"USDT|USDC|BTC|ETH|TRX|BNB|SOL|USD|CNY|RMB|HKD|EUR|U|sats?|gwei|wei|x")
    + ")",
    re.IGNORECASE,
)
_DECIMAL_EDGE = frozenset(".,，")


def _looks_like_amount(text: str, start: int, end: int) -> bool:
    """Decimals, thousands separators or a unit right after: an amount, not an identifier."""
    if start >= 2 and text[start - 1] in _DECIMAL_EDGE and text[start - 2].isdigit():
        return True
    if end + 1 < len(text) and text[end] in _DECIMAL_EDGE and text[end + 1].isdigit():
        return True
    if start >= 1 and text[start - 1] in "¥￥$":
        return True
    return _UNIT_AFTER_RE.match(text, end) is not None


# ---------------------------------------------------------------------------------------
# Seed phrases.
_SEED_CUE_RE = re.compile(
    "助记词|助記詞|助记码|助記碼|恢复词|恢復詞|种子|種子|备份词|備份詞|备份|備份|"
    "私钥|私鑰|"
    + _en(
        r"mnemonics?|seed(?:\s*phrase|\s*words?)?|recovery\s*(?:phrase|words?)|"
        r"secret\s*(?:recovery\s*)?phrase|backup\s*phrase"
    ),
    re.IGNORECASE,
)
# Substrings one of which every cue contains: a cheap test before the regex.
_SEED_CUE_HINTS = (
    "助记", "助記", "恢复", "恢復", "种子", "種子", "备份", "備份", "私钥", "私鑰",
    "mnemonic", "seed", "recovery", "secret", "backup",
)  # fmt: skip
_CUE_WINDOW_BEFORE = 40
_CUE_WINDOW_AFTER = 20

# A gap between the words of a written-down phrase: spaces, newlines, list punctuation,
# numbering ("1. abandon 2. ability", "①", "(3)"). One character class with a bound, so
# the regex below cannot backtrack more than a constant per word.
_GAP_CHARS = r"\s,;:.|/、，；：。·•*_()\[\]（）【】\"'“”‘’#0-9①-⑳-"
_GAP = f"[{_GAP_CHARS}]" + "{1,10}"
# The lookbehind sits after the first letter so that ``re`` can skip non-letters fast.
_EN_SEED_RE = re.compile(
    rf"[A-Za-z](?<![A-Za-z].)[A-Za-z]{{2,7}}(?:{_GAP}[A-Za-z]{{3,8}}){{11,}}(?![A-Za-z])"
)
_EN_TOKEN_RE = re.compile(r"[A-Za-z]+")
_ZH_CLASS = "[" + "".join(sorted(_ZH_RANK)) + "]"
# Whole runs per iteration: the engine loops over a character class at C speed and only
# iterates the group at a gap. Chains shorter than 12 characters are dropped in Python.
_ZH_CHAIN_RE = re.compile(f"{_ZH_CLASS}+(?:[{_GAP_CHARS}]{{1,10}}{_ZH_CLASS}+)*")
_ZH_TOKEN_RE = re.compile(f"{_ZH_CLASS}+")
_GAP_ONLY_RE = re.compile(f"[{_GAP_CHARS}]*")
_ZH_FILLER_RE = re.compile(r"(?:分别|分別|就|应该|應該|大概)?(?:是|为|為|如下)(?:如下)?")
_MAX_TYPOS_WITH_CUE = 2
_LABEL_GAP_RE = re.compile(r"\s*[:：=]|\s+-\s")
_SENTENCE_END_RE = re.compile(r"[.!?。！？]\s")
_MAX_TRAILING_WORDS = 4


def _cue_near(cues: _Spans, start: int, end: int) -> bool:
    return cues.overlaps(start - _CUE_WINDOW_BEFORE, end + _CUE_WINDOW_AFTER)


def _scan_en_seed(text: str, cues: _Spans, out: list[Finding]) -> None:
    for chain in _EN_SEED_RE.finditer(text):
        # A typo or two inside a long run is still the phrase, but only when the text
        # says it is one; prose gets no such slack.
        typos_allowed = _MAX_TYPOS_WITH_CUE if _cue_near(cues, *chain.span()) else 0
        run: list[re.Match[str]] = []
        words = typos = pending = streak = 0
        for tok in _EN_TOKEN_RE.finditer(text, chain.start(), chain.end()):
            if tok.group().lower() in _EN_INDEX:
                run.append(tok)
                words += 1
                streak += 1
                typos += pending
                pending = 0
                continue
            # A typo needs a few phrase words before it, so that "seed phrase was <phrase>"
            # does not pull the words before the phrase in.
            if streak >= 3 and typos + pending < typos_allowed:
                run.append(tok)
                pending += 1
                streak = 0
                continue
            _emit_en_run(text, run[: len(run) - pending], words, out)
            run = []
            words = typos = pending = streak = 0
        _emit_en_run(text, run[: len(run) - pending], words, out)


def _emit_en_run(text: str, run: list[re.Match[str]], words: int, out: list[Finding]) -> None:
    # At least 12 tokens, of which at most _MAX_TYPOS_WITH_CUE are not wordlist words.
    if len(run) < 12 or words < 12 - _MAX_TYPOS_WITH_CUE:
        return
    # Wordlist words around the phrase: a label in front ("seed: …", "phrase - …") and a
    # few words after a sentence end ("… once. Please help").
    first = 0
    while len(run) - first > 12 and (
        _SEED_CUE_RE.fullmatch(run[first].group())
        or _LABEL_GAP_RE.match(text, run[first].end(), run[first + 1].start())
    ):
        first += 1
    run = run[first:]
    for i in range(max(12, len(run) - _MAX_TRAILING_WORDS), len(run)):
        if _SENTENCE_END_RE.match(text, run[i - 1].end(), run[i].start()):
            run = run[:i]
            break
    if len(run) not in _VALID_WORD_COUNTS:
        # A wordlist word before or after the phrase ("… about. help"): the checksum says
        # where the phrase really is.
        window = _checksum_window([_EN_INDEX.get(t.group().lower(), -1) for t in run], len(run))
        if window:
            run = run[window[0] : window[1]]
    out.append(Finding(FindingKind.SEED_PHRASE, run[0].start(), run[-1].end()))


def _checksum_window(indices: Sequence[int], n: int) -> tuple[int, int] | None:
    """The longest checksum-valid prefix or suffix of a valid length, if any."""
    for length in _VALID_WORD_COUNTS:
        if length > n:
            continue
        for a in (0, n - length):
            window = indices[a : a + length]
            if -1 not in window and _bip39_checksum_ok(window):
                return a, a + length
    return None


def _zh_is_slice(chars: Sequence[str]) -> bool:
    """Consecutive wordlist entries (的一是在不了…): the demo/test phrase people paste."""
    first = _ZH_RANK[chars[0]]
    return all(_ZH_RANK[ch] == first + i for i, ch in enumerate(chars))


def _zh_prose_score(chars: Sequence[str]) -> float:
    return sum(_ZH_PROSE_LR[ch] for ch in chars) / len(chars)


def _zh_common_pairs_at(text: str, start: int, end: int) -> list[int]:
    """Indices i (start <= i < end-1) where text[i:i+2] is a common word."""
    fold = _ZH_FOLD
    pairs = _ZH_COMMON_PAIRS
    found = []
    prev = fold.get(text[start], text[start])
    for i in range(start + 1, end):
        cur = fold.get(text[i], text[i])
        if prev + cur in pairs:
            found.append(i - 1)
        prev = cur
    return found


def _zh_phrase_like(chars: str, hits: int, cue: bool) -> bool:
    """A checksum-valid run that does not read like prose.

    One common word may occur by chance in a generated phrase (0.3 % of 12-word phrases),
    so a checksum-valid run may contain one.
    """
    if len(chars) not in _VALID_WORD_COUNTS or hits > 1:
        return False
    limit = _ZH_PROSE_MAX_WITH_CUE if cue else _ZH_PROSE_MAX
    return _zh_prose_score(chars) < limit and _zh_checksum_ok(chars)


def _zh_pick_contiguous(text: str, start: int, end: int, cue: bool) -> tuple[int, int] | None:
    """Decide whether text[start:end] (contiguous wordlist characters) holds a phrase.

    Without a cue the whole run must be checksum-valid and not read like prose. With a
    cue nearby the phrase may be followed by prose ("…请帮我找回"): a checksum-valid prefix
    or suffix is taken, else the run is cut at common words and a long enough piece that
    does not read like prose is taken whole (phrases with a typo have no valid checksum).
    """
    n = end - start
    if n < 12:
        return None
    if _zh_is_slice(text[start:end]):
        return start, end
    if not cue:
        if n not in _VALID_WORD_COUNTS:
            return None
        cuts = _zh_common_pairs_at(text, start, end)
        return (start, end) if _zh_phrase_like(text[start:end], len(cuts), cue) else None
    cuts = _zh_common_pairs_at(text, start, end)
    if n in _VALID_WORD_COUNTS and len(cuts) <= 1 and _zh_checksum_ok(text[start:end]):
        # Cue, exact length and checksum: a phrase even from low-entropy test data
        # ("的的的的的的的的的的的在" reads like prose to the frequency score).
        return start, end
    for length in _VALID_WORD_COUNTS:
        if length > n:
            continue
        for a in (start, end - length):
            hits = sum(1 for c in cuts if a <= c < a + length - 1)
            if _zh_phrase_like(text[a : a + length], hits, cue):
                return a, a + length
    if not cuts:
        limit = _ZH_PROSE_MAX_WITH_CUE
        return (start, end) if _zh_prose_score(text[start:end]) < limit else None
    # Both characters of a common word are prose; keep the longest piece between them.
    best: tuple[int, int] | None = None
    piece_start = start
    for c in [*cuts, end]:
        piece_end = min(c, end)
        if piece_end - piece_start >= 12:
            picked = _zh_pick_contiguous(text, piece_start, piece_end, cue)
            if picked and (best is None or picked[1] - picked[0] > best[1] - best[0]):
                best = picked
        piece_start = max(piece_start, c + 2)
    return best


def _zh_grouped_ok(chars: str, hits: Callable[[], int], cue: bool) -> bool:
    """Groups of 2–6 characters separated by spaces or newlines ("的一是 在不了 …").

    ``chars`` is the groups joined; ``hits`` counts the common words inside the groups,
    asked for only when the length and the slice test leave the answer open.
    """
    if len(chars) < 12:
        return False
    if _zh_is_slice(chars):
        return True
    if not cue and len(chars) not in _VALID_WORD_COUNTS:
        return False
    n_hits = hits()
    if _zh_phrase_like(chars, n_hits, cue):
        return True
    # Comma-separated short clauses look like groups too, so only a cue lets a phrase
    # without a valid checksum (a typo, a missing word) through.
    return cue and n_hits == 0 and _zh_prose_score(chars) < _ZH_PROSE_MAX_WITH_CUE


def _zh_tokens(text: str, start: int, end: int, cues: _Spans) -> list[tuple[int, int]]:
    """Contiguous wordlist runs in [start, end), with cue words cut out."""
    toks: list[tuple[int, int]] = []
    for m in _ZH_TOKEN_RE.finditer(text, start, end):
        a, b = m.span()
        for cue_start, cue_end in cues.within(a, b) if cues else ():
            if cue_start > a:
                toks.append((a, cue_start))
            a = max(a, cue_end)
        if a < b:
            toks.append((a, b))
    return toks


def _after_cue(text: str, cues: _Spans, pos: int) -> bool:
    """True when only separators stand between the end of a cue and ``pos``."""
    # Cue words are not separators, so only the last cue before ``pos`` can qualify.
    cue_end = cues.last_end_at_or_before(pos)
    return cue_end is not None and _GAP_ONLY_RE.fullmatch(text, cue_end, pos) is not None


def _scan_zh_seed(text: str, cues: _Spans, out: list[Finding]) -> None:
    for chain in _ZH_CHAIN_RE.finditer(text):
        if chain.end() - chain.start() < 12:
            continue
        toks = _zh_tokens(text, chain.start(), chain.end(), cues)
        # Split into groups joined by separators only (a cut-out cue ends a group).
        groups: list[list[tuple[int, int]]] = []
        for tok in toks:
            if groups and _GAP_ONLY_RE.fullmatch(text, groups[-1][-1][1], tok[0]):
                groups[-1].append(tok)
            else:
                groups.append([tok])
        for group in groups:
            _scan_zh_group(text, group, cues, out)


def _scan_zh_group(
    text: str,
    group: Sequence[tuple[int, int]],
    cues: _Spans,
    out: list[Finding],
) -> None:
    group = list(group)
    if cues and _after_cue(text, cues, group[0][0]):
        # "助记词是 的 一 …", "助记词是承，白，…": a short first token that starts with
        # "是/为/如下" is the label's verb, not the phrase. (A long run keeps the choice:
        # its first character may be 是 itself.)
        a, b = group[0]
        filler = _ZH_FILLER_RE.match(text, a, b)
        if filler and b - a <= 6:
            group = group[1:] if filler.end() == b else [(filler.end(), b), *group[1:]]
    i = 0
    while i < len(group):
        a, b = group[i]
        if b - a > 6:
            # One long contiguous run; try without "是/为/如下" right after a cue first.
            cue = bool(cues) and _cue_near(cues, a, b)
            picked = None
            if cue and _after_cue(text, cues, a):
                filler = _ZH_FILLER_RE.match(text, a, b)
                if filler and filler.end() > a:
                    picked = _zh_pick_contiguous(text, filler.end(), b, cue)
            if picked is None:
                picked = _zh_pick_contiguous(text, a, b, cue)
            if picked:
                out.append(Finding(FindingKind.SEED_PHRASE, *picked))
            i += 1
            continue
        # A stretch of short tokens: single characters or small groups.
        j = i
        while j < len(group) and group[j][1] - group[j][0] <= 6:
            j += 1
        stretch = group[i:j]
        # Twelve or more separated single characters ("还有 的 一 是 …") are a phrase
        # whatever they are: prose is never written that way.
        singles = _single_char_runs(stretch)
        for run_start, run_end in singles:
            out.append(Finding(FindingKind.SEED_PHRASE, run_start, run_end))
        if not singles:
            _scan_zh_stretch(text, stretch, cues, out)
        i = j


def _single_char_runs(stretch: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of 12+ consecutive one-character tokens."""
    runs = []
    k = 0
    while k < len(stretch):
        m = k
        while m < len(stretch) and stretch[m][1] - stretch[m][0] == 1:
            m += 1
        if m - k >= 12:
            runs.append((stretch[k][0], stretch[m - 1][1]))
        k = max(m, k + 1)
    return runs


def _scan_zh_stretch(
    text: str,
    stretch: Sequence[tuple[int, int]],
    cues: _Spans,
    out: list[Finding],
) -> None:
    if sum(b - a for a, b in stretch) < 12:
        return
    cue = bool(cues) and _cue_near(cues, stretch[0][0], stretch[-1][1])
    texts = [text[a:b] for a, b in stretch]
    pair_counts: list[int] = []  # per token, filled on first need: the candidates share them

    def hits(first: int, last: int) -> int:
        if not pair_counts:
            pair_counts.extend(
                len(_zh_common_pairs_at(text, a, b)) if b - a > 1 else 0 for a, b in stretch
            )
        return sum(pair_counts[first:last])

    # A label or a trailing word may sit in the first or last group ("备份: 了统塔 …").
    n = len(stretch)
    for first, last in ((0, n), (1, n), (0, n - 1), (1, n - 1)):
        if first < last and _zh_grouped_ok(
            "".join(texts[first:last]), partial(hits, first, last), cue
        ):
            out.append(Finding(FindingKind.SEED_PHRASE, stretch[first][0], stretch[last - 1][1]))
            return


# ---------------------------------------------------------------------------------------
# Private keys.
# Every key format is one alphanumeric token of 51+ characters: find those once (the
# lookbehind after the first character lets a match start only where a token starts) and
# classify them in Python. Addresses (0x + 40 hex, bc1…, 1…/3…, T…) are shorter.
_LONG_TOKEN_RE = re.compile(r"[0-9A-Za-z](?<![0-9A-Za-z].)[0-9A-Za-z]{50,}")
_HEX_RE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
_B58_TOKEN_RE = re.compile(f"{_B58}+")
_XPRV_PREFIXES = ("xprv", "tprv", "yprv", "zprv", "uprv", "vprv", "Yprv", "Zprv", "Uprv", "Vprv")
_KEY_WINDOW_BEFORE = 60
_KEY_WINDOW_AFTER = 12
_WIF_VERSIONS = (0x80, 0xEF)  # mainnet, testnet
_XPRV_PAYLOAD_LEN = 78


def _b58check(s: str) -> bytes | None:
    try:
        payload: bytes = base58.b58decode_check(s)
    except ValueError:
        return None
    return payload


def _is_wif(s: str) -> bool:
    payload = _b58check(s)
    if payload is None or payload[0] not in _WIF_VERSIONS:
        return False
    # 1 version byte + 32 key bytes, plus a 0x01 suffix for a compressed key.
    return len(payload) == 33 or (len(payload) == 34 and payload[-1] == 1)


def _key_by_context(text: str, start: int, end: int) -> bool:
    """A hash-shaped string is a key only when the nearest label says so."""
    before = _label_before(text, start, _KEY_WINDOW_BEFORE)
    if before == "key":
        return True
    if before in ("txid", "order"):
        return False
    return _label_after(text, end, _KEY_WINDOW_AFTER) == "key"


def _normalize_txid(value: str) -> str:
    value = value.strip().lower()
    return value[2:] if value.startswith("0x") else value


def _scan_keys(text: str, known_txids: frozenset[str], out: list[Finding]) -> None:
    for m in _LONG_TOKEN_RE.finditer(text):
        token = m.group()
        start, end = m.span()
        if _HEX_RE.fullmatch(token):
            # 64 hex is a transaction hash unless the text says key (ask the TxID field).
            if _normalize_txid(token) in known_txids:
                continue
            if _key_by_context(text, start, end):
                out.append(Finding(FindingKind.PRIVATE_KEY, start, end))
            continue
        n = len(token)
        if not _B58_TOKEN_RE.fullmatch(token):
            continue
        if n in (51, 52) and token[0] in "59KLc":
            is_key = _is_wif(token)
        elif token.startswith(_XPRV_PREFIXES):
            payload = _b58check(token)
            is_key = payload is not None and len(payload) == _XPRV_PAYLOAD_LEN
        else:
            # Base58 64-byte secrets (Solana keypairs) look exactly like Solana
            # transaction signatures: keys only when the text says so.
            is_key = 85 <= n <= 90 and token not in known_txids
            is_key = is_key and _key_by_context(text, start, end)
        if is_key:
            out.append(Finding(FindingKind.PRIVATE_KEY, start, end))


# ---------------------------------------------------------------------------------------
# Passwords: a label, an explicit separator, then the value; only the value is masked.
# A quoted value may hold spaces ("my password is 'correct horse battery staple'").
_PW_QUOTED = "[“「『\"'‘](?P<{0}q>[ !#-&(-~]{{1,64}})(?=[”」』\"'’])"
_PW_RE = re.compile(
    # Chinese label; the separator may be absent ("密码123456") or a verb ("改成了").
    r"(?P<zl>(?:登录|登陆|登錄|登陸|资金|資金|交易|支付|提币|提幣|邮箱|郵箱|账户|賬戶|账号|帳號|"
    r"钱包|錢包|旧|舊|新|原|初始|解锁|解鎖)?(?:密码|密碼))"
    r"(?P<zs>\s*(?:是|为|為|改成了?|改为|改為|设为|設為|设置为|設置為|设置成|設置成|设成|設成|"
    r"换成了?|換成了?)?\s*[:：=]?\s*)"
    rf"(?:{_PW_QUOTED.format('z')}|(?P<zv>[!-~]{{1,128}}))"
    # English label; needs ":", "=" or "is"/"was" ("password reset" is not a password).
    r"|(?P<el>(?<![A-Za-z])(?:password|passwd|passcode|passphrase|pwd|pw|pass)(?![A-Za-z]))"
    r"(?P<es>\s*[:=：]\s*|\s+(?:is|was|is\s+now|set\s+to|changed\s+to)\s*[:：]?\s*)"
    rf"(?:{_PW_QUOTED.format('e')}|(?P<ev>[!-~]{{1,128}}))",
    re.IGNORECASE,
)
_PW_HINTS = ("密码", "密碼", "pass", "pw")
_PW_EXPLICIT_ZH = re.compile(r"[是为為成:：=]")
_PW_TRAILING = ".,;:?)]}>\"'”’」』。"
# "password: required", "Password: hidden" …: words that describe a password.
_PW_STOP_WORDS = frozenset(
    {
        "wrong", "incorrect", "invalid", "correct", "right", "not", "too", "the", "and",
        "reset", "required", "needed", "weak", "strong", "missing", "empty", "blank", "expired",
        "locked", "changed", "same", "different", "still", "very", "being", "none", "null",
        "hidden", "redacted", "forgotten", "forgot", "lost", "stolen", "compromised", "leaked",
        "hacked", "updated", "saved", "here", "there", "what", "this", "that", "it", "mine",
        "yours", "working", "fine", "okay", "safe", "secure", "protected", "encrypted", "case",
        "sensitive", "long", "short",
    }
)  # fmt: skip
_PW_AFTER_UNIT_RE = re.compile(
    r"\s?(?:位|个字符|個字符|字符|个字|次|分钟|小时|天|"
    + _en(r"characters?|chars?|digits?|letters?|times|minutes?|hours?|days?")
    + ")",
    re.IGNORECASE,
)
_PW_MIN_LEN = 4
_PW_MAX_LEN = 64


def _password_value(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    zh = m.group("zl") is not None
    quoted = m.group("zq" if zh else "eq") is not None
    start, end = m.span(("zq" if zh else "eq") if quoted else ("zv" if zh else "ev"))
    value = text[start:end]
    if not quoted:
        # Sentence punctuation and stray quotes around the value are not part of it.
        while value and value[-1] in _PW_TRAILING:
            value = value[:-1]
        while value and value[0] in "\"'":
            value = value[1:]
            start += 1
        end = start + len(value)
    if not _PW_MIN_LEN <= len(value) <= _PW_MAX_LEN:
        return None
    if set(value) <= set("*•xX·.") or "://" in value or value.lower().startswith("www."):
        return None  # already masked, or a link
    if _PW_AFTER_UNIT_RE.match(text, end):
        return None  # a rule ("8-20位", "8 characters"), not a value
    has_symbol_or_digit = not value.isalpha()
    sep = m.group("zs" if zh else "es")
    if zh:
        explicit = bool(_PW_EXPLICIT_ZH.search(sep)) or quoted
        if not explicit and not has_symbol_or_digit:
            return None  # "密码 reset": a bare word after the label is prose
    elif not has_symbol_or_digit and not quoted:
        if m.group("el").lower() in ("pass", "pw"):
            return None  # "First pass: check the logs"
        if not any(c in sep for c in ":=："):
            return None  # "my password is wrong"
    if not quoted and value.lower() in _PW_STOP_WORDS:
        return None
    return start, end


def _scan_passwords(text: str, out: list[Finding]) -> None:
    for m in _PW_RE.finditer(text):
        span = _password_value(text, m)
        if span:
            out.append(Finding(FindingKind.PASSWORD, *span))


# ---------------------------------------------------------------------------------------
# 2FA codes: six or eight digits (or "123 456") next to a code label.
_OTP_CODE_RE = re.compile(
    rf"{_NOT_ALNUM_BEFORE}(?:{_D}{{8}}|{_D}{{6}}|{_D}{{3}}[ -]{_D}{{3}}|{_D}{{4}}[ -]{_D}{{4}})"
    rf"{_NOT_ALNUM_AFTER}"
)
_OTP_WINDOW_BEFORE = 20
_OTP_WINDOW_AFTER = 10


def _otp_at(text: str, m: re.Match[str]) -> Finding | None:
    start, end = m.span()
    if _looks_like_amount(text, start, end):
        return None
    before = _label_before(text, start, _OTP_WINDOW_BEFORE)
    if before == "otp":
        return Finding(FindingKind.OTP_CODE, start, end)
    if before is None and _label_after(text, end, _OTP_WINDOW_AFTER) == "otp":
        return Finding(FindingKind.OTP_CODE, start, end)  # "123456 是谷歌验证码"
    return None


# ---------------------------------------------------------------------------------------
# Numbers that are PII: ID cards, bank cards, phones.
# Everything below needs six or more digits (separated by at most one space or dash);
# the specific patterns only run in a small window around such a span.
_NUMBER_SPAN_RE = re.compile(f"{_D}(?:[ -]?{_D}){{5,}}")
_SPAN_MARGIN_BEFORE = 6  # room for "(+86) ", "0086 "
_ID18_RE = re.compile(
    rf"{_NOT_ALNUM_BEFORE}{_D}{{6}}[ -]?{_D}{{8}}[ -]?{_D}{{3}}[0-9Xx\uff10-\uff19\uff38\uff58]"
    rf"{_NOT_ALNUM_AFTER}"
)
_ID15_RE = re.compile(rf"{_NOT_ALNUM_BEFORE}{_D}{{15}}{_NOT_ALNUM_AFTER}")
_CARD_RE = re.compile(
    rf"(?<![0-9A-Za-z\uff10-\uff19+])(?:{_D}{{13,19}}|{_D}{{4}}(?:[ -]{_D}{{4}}){{2,3}}"
    rf"(?:[ -]{_D}{{1,4}})?|{_D}{{4}}[ -]{_D}{{6}}[ -]{_D}{{4,5}}){_NOT_ALNUM_AFTER}"
)
_CN_MOBILE_RE = re.compile(
    rf"(?<![0-9A-Za-z\uff10-\uff19+])(?:(?:\+|00)?86[ -]?|[(（]\+?86[)）] ?)?"
    rf"[1１][3-9３-９]{_D}(?:[ -]?{_D}{{4}}){{2}}{_NOT_ALNUM_AFTER}"
)
_E164_RE = re.compile(rf"(?<![0-9A-Za-z+])\+[1-9](?:[ -]?{_D}){{7,14}}{_NOT_ALNUM_AFTER}")
_NUMBER_WINDOW = 16
# Mainland province-level codes (GB/T 2260 first two digits).
_ID_PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
        "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
        "63", "64", "65", "71", "81", "82", "91",
    }
)  # fmt: skip
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10x98765432"
_NOT_CARD_LABELS = frozenset({"order", "uid", "txid", "amount", "time", "phone", "otp", "id"})
_NOT_PHONE_LABELS = frozenset({"order", "uid", "txid", "amount", "time", "card", "id"})
_NOT_ID_LABELS = frozenset({"order", "uid", "txid", "amount", "time", "otp"})


def _plausible_birth_date(yyyymmdd: str) -> bool:
    try:
        born = datetime.strptime(yyyymmdd, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return False
    return born.year >= 1900 and born <= datetime.now(UTC)


def _is_id18(digits: str) -> bool:
    if len(digits) != 18 or digits[:2] not in _ID_PROVINCES:
        return False
    if not _plausible_birth_date(digits[6:14]):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == digits[17]


def _is_id15(digits: str) -> bool:
    return digits[:2] in _ID_PROVINCES and _plausible_birth_date("19" + digits[6:12])


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _scan_numbers(text: str, out: list[Finding]) -> None:
    taken = _Spans()

    def free(start: int, end: int) -> bool:
        return not taken.overlaps(start, end)

    for span in _NUMBER_SPAN_RE.finditer(text):
        # +1 so the lookaheads see the character after the span.
        lo, hi = max(0, span.start() - _SPAN_MARGIN_BEFORE), min(len(text), span.end() + 1)
        n_digits = len(span.group()) - span.group().count(" ") - span.group().count("-")
        # A code stands alone: "1234 5678" inside "138 1234 5678" is part of a phone.
        m = _OTP_CODE_RE.match(text, span.start())
        if m and m.end() == span.end():
            otp = _otp_at(text, m)
            if otp and free(otp.start, otp.end):
                out.append(otp)
                taken.add(otp.start, otp.end)
        if n_digits < 8:  # the shortest phone (E.164) has 8 digits
            continue
        for regex, check in ((_ID18_RE, _is_id18), (_ID15_RE, _is_id15)):
            if n_digits < 15:
                break
            for m in regex.finditer(text, lo, hi):
                start, end = m.span()
                if not check(_digits(m.group())) or not free(start, end):
                    continue
                if _label_before(text, start, _NUMBER_WINDOW) in _NOT_ID_LABELS:
                    continue
                out.append(Finding(FindingKind.ID_CARD, start, end))
                taken.add(start, end)
        for m in _CARD_RE.finditer(text, lo, hi) if n_digits >= 13 else ():
            start, end = m.span()
            if free(start, end) and _is_card(text, m):
                out.append(Finding(FindingKind.BANK_CARD, start, end))
                taken.add(start, end)
        for regex in (_CN_MOBILE_RE, _E164_RE):
            for m in regex.finditer(text, lo, hi):
                start, end = m.span()
                if not free(start, end) or _looks_like_amount(text, start, end):
                    continue
                if _label_before(text, start, _NUMBER_WINDOW) in _NOT_PHONE_LABELS:
                    continue
                out.append(Finding(FindingKind.PHONE, start, end))
                taken.add(start, end)


def _is_card(text: str, m: re.Match[str]) -> bool:
    start, end = m.span()
    digits = _digits(m.group())
    if not 13 <= len(digits) <= 19 or not _luhn_ok(digits):
        return False
    if len(digits) == 13 and digits[0] == "1" and digits[1] in "56789":
        return False  # a millisecond timestamp (2017–2033), label or not
    if _looks_like_amount(text, start, end):
        return False
    label = _label_before(text, start, _NUMBER_WINDOW)
    if label in _NOT_CARD_LABELS:
        return False
    # Card numbers start 2–6 (Mastercard 2-series, Amex 3, Visa 4, MC 5, UnionPay 6);
    # anything else (ms timestamps 1[5-9]…, phone numbers with 86) needs a card label.
    return digits[0] in "23456" or label == "card"


# ---------------------------------------------------------------------------------------
# Email. The lookbehind lets a match start only at the beginning of a local-part run, so a
# 100k-character run without "@" is scanned once, not once per position.
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def _scan_emails(text: str, out: list[Finding]) -> None:
    if "@" not in text:
        return
    for m in _EMAIL_RE.finditer(text):
        out.append(Finding(FindingKind.EMAIL, m.start(), m.end()))


# ---------------------------------------------------------------------------------------
_KIND_ORDER = {kind: i for i, kind in enumerate(FindingKind)}
_HAS_CJK_RE = re.compile("[\u3400-\u9fff]")


def _resolve(candidates: list[Finding]) -> list[Finding]:
    """Non-overlapping, sorted by start: secrets beat PII, then longer beats shorter."""
    if len(candidates) <= 1:
        return candidates
    ranked = sorted(
        candidates,
        key=lambda f: (
            f.kind not in SECRET_KINDS,
            f.start - f.end,
            _KIND_ORDER[f.kind],
            f.start,
        ),
    )
    taken = _Spans()
    chosen: list[Finding] = []
    for f in ranked:
        if not taken.overlaps(f.start, f.end):
            taken.add(f.start, f.end)
            chosen.append(f)
    chosen.sort(key=lambda f: f.start)
    return chosen


def scan(text: str, *, known_txids: Iterable[str] = ()) -> list[Finding]:
    """Find secrets and PII in ``text``; sorted by start, non-overlapping.

    ``known_txids`` are hashes the text is known to mention as transactions (the ticket's
    TxID field): a 64-hex string among them is never reported as a private key.
    """
    if not text:
        return []
    txids = frozenset(v for t in known_txids for v in (t.strip(), _normalize_txid(t)))
    found: list[Finding] = []
    lower = text.lower()  # only for the substring pre-checks; offsets come from ``text``
    cues = _Spans()
    if any(hint in lower for hint in _SEED_CUE_HINTS):
        cues = _Spans(m.span() for m in _SEED_CUE_RE.finditer(text))
    _scan_en_seed(text, cues, found)
    if _HAS_CJK_RE.search(text):
        _scan_zh_seed(text, cues, found)
    _scan_keys(text, txids, found)
    if any(hint in lower for hint in _PW_HINTS):
        _scan_passwords(text, found)
    _scan_numbers(text, found)
    _scan_emails(text, found)
    return _resolve(found)


def mask_secrets(text: str, findings: Sequence[Finding] | None = None) -> tuple[str, list[Finding]]:
    """Replace every secret with its marker ("[已屏蔽：助记词]" …); PII stays as it is.

    Returns the masked text and the findings (all kinds, offsets into the ORIGINAL text).
    The markers contain nothing a later ``scan`` would detect, so scanning the masked text
    again finds the PII at its new offsets.
    """
    if findings is None:
        findings = scan(text)
    found = _resolve([f for f in findings if 0 <= f.start < f.end <= len(text)])
    parts: list[str] = []
    pos = 0
    for f in found:
        if f.kind in SECRET_KINDS:
            parts.append(text[pos : f.start])
            parts.append(SECRET_MARKERS[f.kind])
            pos = f.end
    parts.append(text[pos:])
    return "".join(parts), list(found)


def _mask_pii(kind: FindingKind, value: str) -> str:
    if kind is FindingKind.EMAIL:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = _digits(value)
    if kind is FindingKind.BANK_CARD:
        return f"{digits[:4]} **** **** {digits[-4:]}"
    if kind is FindingKind.ID_CARD:
        tail = value.translate(_FULLWIDTH_DIGITS)[-1:].upper()
        return digits[:6] + "*" * (len(digits) - 10) + digits[-4:-1] + tail
    # Phone: keep the country code a reader needs, then 3 + **** + 4.
    national = digits
    prefix = ""
    if value.lstrip().startswith(("+86", "(+86", "（+86", "0086", "86")) and len(digits) > 11:
        national = digits[-11:]
        prefix = "+86 "
    elif value.startswith("+"):
        return "+" + digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:]
    return prefix + national[:3] + "****" + national[-4:]


def mask_pii_value(kind: FindingKind, value: str) -> str:
    """A field known to hold PII of ``kind`` (a contact's phone or email), masked as it
    would be inside a message, without scanning: the field says what it is."""
    if kind is not FindingKind.EMAIL and len(_digits(value)) < 8:
        # Too short to keep a head and a tail without showing it all.
        return "*" * len(value)
    return _mask_pii(kind, value)


def mask_for_display(text: str, findings: Sequence[Finding]) -> str:
    """Text as an agent sees it: secrets as markers, PII partly masked.

    Bank card "6222 **** **** 1234", ID card "110101********1234", phone "138****5678",
    email "z***@example.com".
    """
    found = _resolve([f for f in findings if 0 <= f.start < f.end <= len(text)])
    parts: list[str] = []
    pos = 0
    for f in found:
        parts.append(text[pos : f.start])
        if f.kind in SECRET_KINDS:
            parts.append(SECRET_MARKERS[f.kind])
        else:
            parts.append(_mask_pii(f.kind, text[f.start : f.end]))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


# ---------------------------------------------------------------------------------------
# Outbound lint: what an agent must never write. Official support never asks for a seed
# phrase, a private key, a password or a 2FA code, and never moves a contact to a
# personal WhatsApp/Telegram/WeChat/QQ: those are the two scripts of every support scam.
_ASK_NOUN_RE = re.compile(
    "(?P<seed_phrase>助记词|助記詞|恢复词|恢復詞|种子词|種子詞|种子短语|備份詞|备份词|"
    + _en(
        r"(?:secret\s+)?(?:seed|recovery|backup|secret|mnemonic)\s*(?:phrase|words?)|"
        r"mnemonics?|seed"
    )
    + ")"
    "|(?P<private_key>私钥|私鑰|秘钥|" + _en(r"private\s*keys?|privkey|keystore(?:\s*file)?") + ")"
    "|(?P<otp_code>谷歌验证码|谷歌驗證碼|谷歌验证器的?(?:动态)?码|短信验证码|邮箱验证码|"
    "手机验证码|验证码|驗證碼|动态码|動態碼|动态口令|短信码|GA码|"
    + _en(
        r"2FA\s*codes?|two[\s-]factor\s*codes?|(?:google\s*)?authenticator\s*codes?|"
        r"verification\s*codes?|security\s*codes?|OTP|one[\s-]time\s*(?:codes?|passwords?)|"
        r"sms\s*codes?"
    )
    + ")"
    "|(?P<password>(?:登录|登陆|资金|交易|支付|账户|账号|邮箱)?密码|密碼|"
    + _en(r"passwords?|passcodes?|pwd|PIN")
    + ")",
    re.IGNORECASE,
)
# Words that make the noun an action rather than the secret itself ("重置密码",
# "reset your password", "收到验证码", "password reset link").
_NOUN_ACTION_BEFORE_RE = re.compile(
    r"(?:重置|修改|更改|设置|找回|忘记|更新|收到|接收|获取|重新发送|重发|新的?|"
    + _en(r"reset|change|update|forgot|forgotten|new|receive|received|resend|get|set")
    + r")\s*(?:(?:您|你)的|your|the|a)?\s*(?:登录|资金|交易)?$",
    re.IGNORECASE,
)
_NOUN_ACTION_AFTER_RE = re.compile(
    r"\s*(?:重置|修改|更改|找回|设置|错误|强度|规则|邮件|链接|页面|已发送|发送到|收不到|"
    + _en(r"reset|change|update|manager|rules?|requirements?|email|link|page|expired")
    + ")",
    re.IGNORECASE,
)
_ASK_VERB_RE = re.compile(
    "(?P<ask>提供|告诉|告知|透露|报一下|报给|报出|说出|说一下|念一下|念给|读一下|出示|索要|"
    "发给|发我|发过来|发一下|发来|私信|提交|回复|截图|拍照|拍一下|核实|核对|确认一下|分享|"
    "给我|给我们|需要您|需要你|"
    + _en(
        r"send|provide|share|tell|give|reply\s+with|dm|paste|submit|confirm|verify|need|"
        r"require|disclose|reveal|hand\s+over|read\s+out|ask(?:ing)?\s+for|forward|"
        r"what(?:'s|\s+is)\s+your"
    )
    + ")"
    # Typing a secret is normal in the app; it is a problem on a page or bot we point to.
    "|(?P<enter>输入|填写|填入|粘贴|导入|" + _en(r"enter|input|type|fill\s+in|import") + ")"
    # "发送" is also what the system does ("我们已发送验证码到您的手机").
    "|(?P<send>发送)",
    re.IGNORECASE,
)
_LINK_CONTEXT_RE = re.compile(
    r"链接|网址|网站|网页|表单|下方|这里|此处|机器人|https?://|www\.|"
    + _en(r"link|form|site|website|page|below|here|bot|url"),
    re.IGNORECASE,
)
_SYSTEM_SEND_BEFORE_RE = re.compile(r"(?:已|已经|将|会|系统|我们|重新|点击|可)\s*$")
_SYSTEM_SEND_AFTER_RE = re.compile(r"^\s*(?:到|给|至)(?:您|你)")
_EN_SEND_TO_YOU_RE = re.compile(r"^\s+you\b|^\s+(?:it\s+)?to\s+you\b", re.IGNORECASE)
_EN_WE_SEND_RE = re.compile(
    r"(?:we|we'll|we\s+will|we\s+have|we've|system\s+will|click|tap|re-?)\s*$", re.IGNORECASE
)
# A clause that warns or denies ("我们绝不会索要", "请勿透露", "never share", "anyone who
# asks … is a scammer") is the opposite of a request.
_NEGATION_RE = re.compile(
    "不会|不要|不用|不需要|不需|无需|无须|不必|不能|不得|不可|不应|不该|不许|绝不|决不|从不|"
    "从来不|永远不|永不|勿|切记|禁止|严禁|谨防|小心|提防|当心|防止|以防|警惕|骗子|诈骗|"
    "假冒|冒充|如有人|如果有人|若有人|一旦有人|任何人|拒绝|"
    "别(?=[把向将给跟对]|提供|告诉|透露|发|泄露|分享|相信|回复|点击|理会)|"
    "不(?=提供|告诉|透露|发|泄露|分享|索要|要求|给)|"
    + _en(
        r"never|not|no\s+one|nobody|anyone|anybody|beware|scam\w*|fraud\w*|phishing|"
        r"impersonat\w*|if|avoid|refuse|warning|caution|fake"
    )
    + r"|n't",
    re.IGNORECASE,
)
_CLAUSE_END_RE = re.compile(r"[。！？；;!?\n，]|,\s|\.(?=\s|$)")
_ASK_MAX_DISTANCE = 24

_WHATSAPP_RE = re.compile(
    r"(?:https?://)?(?:wa\.me/\+?\d{6,15}|api\.whatsapp\.com/send\?phone=\+?\d{6,15}|"
    r"chat\.whatsapp\.com/[A-Za-z0-9]{6,})"
    r"|(?:" + _en(r"whats\s?app|WA") + r"|瓦次普)[^\n。]{0,12}?(?P<wa>\+?\d[\d \-]{6,18}\d)",
    re.IGNORECASE,
)
_TELEGRAM_RE = re.compile(
    r"(?:https?://)?(?:www\.)?(?:t|telegram)\.(?:me|dog)/(?P<tl>[A-Za-z0-9_+/-]{2,})"
    r"|(?:" + _en(r"telegram|tg") + r"|电报|電報|纸飞机|飞机|飛機)[^\n。]{0,12}?"
    r"(?<![A-Za-z0-9._%+-])@(?P<th>[A-Za-z][A-Za-z0-9_]{3,31})"
    r"|(?:联系|联络|私聊|私信|添加|加|找|"
    + _en(r"contact|message|dm|add|reach(?:\s+out\s+to)?")
    + r")\s*[:：]?\s*(?<![A-Za-z0-9._%+-])@(?P<ch>[A-Za-z][A-Za-z0-9_]{3,31})",
    re.IGNORECASE,
)
_WECHAT_WORD = r"(?:微信|微 信|威信|薇信|徽信|v信|V信|" + _en(r"vx|wx|wechat|weixin") + ")"
_WECHAT_ID = r"(?<![A-Za-z0-9_-])(?:[A-Za-z][-_A-Za-z0-9]{5,19}|1[3-9]\d{9})(?![A-Za-z0-9_-])"
_WECHAT_RE = re.compile(
    rf"加(?:我|一下我|下我)的?\s*{_WECHAT_WORD}(?:\s*(?:号|號|id)?\s*[:：]?\s*(?P<wid>{_WECHAT_ID}))?"
    rf"|{_WECHAT_WORD}\s*(?:号|號|id)?\s*[:：是为]?\s*(?P<wid2>{_WECHAT_ID})",
    re.IGNORECASE,
)
_QQ_RE = re.compile(_en("QQ") + r"(?:号|號|群)?\s*[:：]?\s*(?P<qq>\d{5,11})(?!\d)")

_SECRET_LABELS = {
    FindingKind.SEED_PHRASE: "助记词",
    FindingKind.PRIVATE_KEY: "私钥",
    FindingKind.PASSWORD: "密码",
    FindingKind.OTP_CODE: "验证码",
}
_CONTACT_LABELS = {"whatsapp": "WhatsApp", "telegram": "Telegram", "wechat": "微信", "qq": "QQ"}


def _clause_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _CLAUSE_END_RE.finditer(text))]


def _verb_asks(text: str, verb: re.Match[str], lo: int, hi: int, has_link: bool) -> bool:
    if verb.lastgroup == "enter":
        return has_link
    if verb.lastgroup == "send":
        before = text[max(lo, verb.start() - 4) : verb.start()]
        after = text[verb.end() : min(hi, verb.end() + 4)]
        return not (_SYSTEM_SEND_BEFORE_RE.search(before) or _SYSTEM_SEND_AFTER_RE.match(after))
    word = verb.group().lower()
    if word in ("send", "give"):
        if _EN_SEND_TO_YOU_RE.match(text, verb.end(), hi):
            return False  # "we will send you a code"
        return not _EN_WE_SEND_RE.search(text[max(lo, verb.start() - 16) : verb.start()])
    return True


def _is_secret_noun(text: str, m: re.Match[str], lo: int, hi: int) -> bool:
    if _NOUN_ACTION_BEFORE_RE.search(text[max(lo, m.start() - 12) : m.start()]):
        return False
    return not _NOUN_ACTION_AFTER_RE.match(text, m.end(), hi)


def _ask_problem(kind: FindingKind, start: int, end: int) -> OutboundProblem:
    return OutboundProblem(
        code="asks_for_secret",
        kind=kind.value,
        start=start,
        end=end,
        message=(
            f"回复中向用户索要{_SECRET_LABELS[kind]}。官方客服绝不会索要助记词、"
            "私钥、密码或验证码，请修改回复。"
        ),
    )


def _contact_problem(kind: str, start: int, end: int) -> OutboundProblem:
    return OutboundProblem(
        code="off_platform_contact",
        kind=kind,
        start=start,
        end=end,
        message=(
            f"回复中包含站外联系方式（{_CONTACT_LABELS[kind]}）。"
            "请只通过官方渠道与用户沟通，不要引导用户添加个人账号。"
        ),
    )


def _normalize_contact(value: str) -> str:
    value = value.strip().lower()
    for prefix in ("https://", "http://", "www.", "t.me/", "telegram.me/", "@"):
        value = value.removeprefix(prefix)
    return value.rstrip("/")


def lint_outbound(text: str, *, official: Iterable[str] = ()) -> list[OutboundProblem]:
    """Problems in an agent's reply: requests for secrets, off-platform contacts.

    A clause that warns or denies ("我们绝不会索要您的助记词", "never share your seed
    phrase") is not a request. ``official`` lists the exchange's own handles, links and ids
    (from the official-channel registry) that may be named.
    """
    starts = _clause_starts(text)

    def clause_of(pos: int) -> int:
        return bisect_right(starts, pos) - 1

    def bounds(ci: int) -> tuple[int, int]:
        return starts[ci], starts[ci + 1] if ci + 1 < len(starts) else len(text)

    # Each pattern runs once over the whole text and its matches are assigned to clauses,
    # so a long reply costs one pass per pattern, not one per clause.
    negated = {clause_of(m.start()) for m in _NEGATION_RE.finditer(text)}
    problems: list[OutboundProblem] = []
    verbs = list(_ASK_VERB_RE.finditer(text))
    verb_starts = [v.start() for v in verbs]
    has_link: dict[int, bool] = {}
    asked: set[int] = set()
    for noun in _ASK_NOUN_RE.finditer(text) if verbs else ():
        ci = clause_of(noun.start())
        if ci in negated or ci in asked:
            continue
        lo, hi = bounds(ci)
        # Only verbs close to the noun and in its clause (bisect: no verbs × nouns loop).
        first = bisect_left(verb_starts, max(lo, noun.start() - _ASK_MAX_DISTANCE - 16))
        last = bisect_right(verb_starts, min(hi, noun.end() + _ASK_MAX_DISTANCE))
        if first >= last or not _is_secret_noun(text, noun, lo, hi):
            continue
        if ci not in has_link:
            has_link[ci] = _LINK_CONTEXT_RE.search(text, lo, hi) is not None
        for verb in verbs[first:last]:
            # "请提供您的助记词" (verb first) or "把助记词发给我" (noun first).
            if verb.start() < noun.start():
                gap = noun.start() - verb.end()
            else:
                gap = verb.start() - noun.end()
            if 0 <= gap <= _ASK_MAX_DISTANCE and _verb_asks(text, verb, lo, hi, has_link[ci]):
                kind = FindingKind(noun.lastgroup or "password")
                start, end = min(verb.start(), noun.start()), max(verb.end(), noun.end())
                problems.append(_ask_problem(kind, start, end))
                asked.add(ci)
                break
    allowed = {_normalize_contact(v) for v in official}
    for regex, kind_name in (
        (_WHATSAPP_RE, "whatsapp"),
        (_TELEGRAM_RE, "telegram"),
        (_WECHAT_RE, "wechat"),
        (_QQ_RE, "qq"),
    ):
        for m in regex.finditer(text):
            if clause_of(m.start()) in negated:
                continue
            values = [m.group(), *(v for v in m.groupdict().values() if v)]
            if allowed and any(_normalize_contact(v) in allowed for v in values):
                continue
            problems.append(_contact_problem(kind_name, m.start(), m.end()))
    problems.sort(key=lambda p: p.start)
    return problems
