// UI text of the rep console: Simplified Chinese by default, English on request.
// The choice is stored in localStorage under "voicebot.lang".
"use strict";

const VOICEBOT_TEXT = {
  zh: {
    title: "坐席工作台", login: "登录", logout: "退出登录", username: "用户名", password: "密码",
    presence: "状态", available: "空闲", busy: "忙碌", away: "离开", current_status: "当前状态",
    offer: "新的转接请求", accept: "接听", decline: "拒绝", in_call: "通话中", hangup: "挂断",
    audio_stats: "音频", wrapup: "通话小结", disposition: "处理结果", notes: "备注", save: "保存",
    saved: "已保存", correction: "机器人纠错", bot_said: "机器人原话", should_have_said: "机器人应该说",
    submit_correction: "提交纠错", queue: "排队中的转接", position: "排队位置", skill: "技能组",
    priority: "优先级", waited: "等待时间", reasons: "转接原因", state: "状态", queue_empty: "暂无排队",
    summary: "通话摘要", transcript: "对话记录", slots: "已收集信息", verification: "身份验证",
    language: "语言", centre: "中心", call_start: "来电时间", caller: "客户", bot: "机器人",
    seconds: "秒", connected: "已连接", disconnected: "连接已断开，正在重连…",
    login_failed: "用户名或密码错误", call_ended: "通话已结束，请填写通话小结",
    offer_withdrawn: "转接请求已撤回", switch_language: "English",
    "skill.fraud": "反欺诈", "skill.card_services": "卡片服务", "skill.complaints": "投诉",
    "state.waiting": "等待中", "state.offered": "已分配", "state.accepted": "已接听",
    "verification.verified": "已验证", "verification.unverified": "未验证",
    "verification.failed": "验证失败", "verification.unknown": "未知",
    "disposition.resolved": "已解决", "disposition.fraud_confirmed": "确认欺诈",
    "disposition.fraud_not_confirmed": "排除欺诈", "disposition.card_blocked": "已冻结卡片",
    "disposition.complaint_logged": "已登记投诉", "disposition.callback_scheduled": "已预约回电",
    "disposition.transferred": "已转其他部门", "disposition.caller_hung_up": "客户挂机",
    "disposition.other": "其他",
  },
  en: {
    title: "Rep console", login: "Log in", logout: "Log out", username: "Username", password: "Password",
    presence: "Presence", available: "Available", busy: "Busy", away: "Away", current_status: "Current status",
    offer: "Incoming transfer", accept: "Accept", decline: "Decline", in_call: "In call", hangup: "Hang up",
    audio_stats: "Audio", wrapup: "Wrap-up", disposition: "Disposition", notes: "Notes", save: "Save",
    saved: "Saved", correction: "Bot correction", bot_said: "What the bot said",
    should_have_said: "What the bot should have said", submit_correction: "Submit correction",
    queue: "Waiting transfers", position: "Position", skill: "Skill", priority: "Priority",
    waited: "Waiting", reasons: "Reasons", state: "State", queue_empty: "Nobody waiting",
    summary: "Summary", transcript: "Transcript", slots: "Collected details", verification: "Identity check",
    language: "Language", centre: "Centre", call_start: "Call started", caller: "Caller", bot: "Bot",
    seconds: "s", connected: "connected", disconnected: "disconnected, reconnecting…",
    login_failed: "Wrong username or password", call_ended: "Call ended, please fill in the wrap-up",
    offer_withdrawn: "The transfer was withdrawn", switch_language: "中文",
    "skill.fraud": "Fraud", "skill.card_services": "Card services", "skill.complaints": "Complaints",
    "state.waiting": "Waiting", "state.offered": "Offered", "state.accepted": "Accepted",
    "verification.verified": "Verified", "verification.unverified": "Not verified",
    "verification.failed": "Failed", "verification.unknown": "Unknown",
    "disposition.resolved": "Resolved", "disposition.fraud_confirmed": "Fraud confirmed",
    "disposition.fraud_not_confirmed": "Not fraud", "disposition.card_blocked": "Card blocked",
    "disposition.complaint_logged": "Complaint logged", "disposition.callback_scheduled": "Callback scheduled",
    "disposition.transferred": "Transferred", "disposition.caller_hung_up": "Caller hung up",
    "disposition.other": "Other",
  },
};

let voicebotLang = localStorage.getItem("voicebot.lang") === "en" ? "en" : "zh";

function t(key) {
  const table = VOICEBOT_TEXT[voicebotLang];
  return key in table ? table[key] : (VOICEBOT_TEXT.zh[key] || key);
}

function applyLanguage() {
  document.documentElement.lang = voicebotLang === "en" ? "en" : "zh-CN";
  document.title = t("title");
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  document.getElementById("lang-switch").textContent = t("switch_language");
}

function switchLanguage() {
  voicebotLang = voicebotLang === "zh" ? "en" : "zh";
  localStorage.setItem("voicebot.lang", voicebotLang);
  applyLanguage();
  document.dispatchEvent(new Event("voicebot-language"));
}
