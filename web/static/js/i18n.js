// English and Russian labels. The language comes from the browser (navigator.languages)
// unless the person picked one in the header; the pick is kept in localStorage.

const STORAGE_KEY = "beacon.lang";
export const LANGUAGES = { en: "English", ru: "Русский" };

const MESSAGES = {
  en: {
    "app.skip": "Skip to the tasks",
    "header.language": "Language",
    "header.mailbox": "Mailbox",
    "header.mailboxTitle": "The built-in mail catcher: open an email there to load its tracking pixel",
    "header.signOut": "Sign out",
    "header.account": "{name} · {plan}",
    "header.freePlan":
      "Delivery tracking is part of the PAID and PREMIUM plans: on this account, icons are not shown.",
    "live.connecting": "Connecting…",
    "live.online": "Live",
    "live.onlineTitle": "Icons update as deliveries change",
    "live.offline": "Offline, reconnecting…",
    "live.offlineTitle": "The live connection dropped; what changed meanwhile is fetched again on reconnect",

    "signIn.title": "Sign in",
    "signIn.help":
      "Paste an API token. On its first start, python main.py serve prints one for the demo account (“sign-in token”).",
    "signIn.token": "API token",
    "signIn.submit": "Sign in",
    "signIn.empty": "Enter a token.",
    "signIn.bad": "This token was not accepted. Check that you copied all of it: it starts with “bcn_”.",
    "signIn.expired": "Your token is no longer accepted. Sign in again.",
    "error.network": "The server did not answer: {message}",

    "tasks.title": "Tasks",
    "tasks.empty": "No tasks yet: create one below.",
    "tasks.more": "Load more tasks",
    "newTask.title": "New task",
    "newTask.name": "Title",
    "newTask.subscribers": "Subscribers (they get an email)",
    "newTask.noPeople": "Nobody to subscribe yet: add a contact first.",
    "newTask.submit": "Create task",
    "newTask.created": "Task “{title}” created.",
    "person.you": "(you)",
    "person.title": "Add a contact",
    "person.name": "Name",
    "person.email": "Email",
    "person.submit": "Add contact",
    "person.added": "{name} added.",

    "feed.empty": "Choose a task on the left, or create one.",
    "feed.loading": "Loading…",
    "feed.created": "Created {time}",
    "feed.subscribers": "Subscribers: {names}",
    "feed.nobody": "nobody",
    "feed.taskStatus": "Task notification:",
    "feed.comments": "Comments",
    "feed.showSystem": "Show system comments",
    "feed.noComments": "No comments yet.",
    "feed.system": "System",
    "feed.more": "Load more comments",
    "feed.noAuthor": "Automation",
    "feed.notFound": "This task does not exist, or belongs to another account.",
    "comment.label": "Add a comment",
    "comment.placeholder": "Write a comment: subscribers get an email",
    "comment.submit": "Add comment",

    "state.QUEUED": "Queued",
    "state.SENT": "Sent",
    "state.FAILED": "Send error",
    "state.READ": "Read",
    "hint.QUEUED": "Waiting to be sent",
    "hint.SENT": "Accepted for delivery by the mail server, or sent over another channel",
    "hint.FAILED": "Not sent: open the details for the reason",
    "hint.READ": "Opened by the recipient: open the details for the date and time",
    "icon.details": "show delivery details",
    "icon.count": "{count} of {total}",
    "icon.breakdown": "{recipients}: {counts}",
    "icon.heldBack": "{count} held back",
    "icon.heldUntil": "Held back by the rate limit: {count}, the first until {time}",
    "recipients.one": "{count} recipient",
    "recipients.other": "{count} recipients",

    "details.title": "Delivery details",
    "details.forTask": "Task “{title}”",
    "details.forComment": "Comment by {author}: “{body}”",
    "details.forTaskAll": "Task “{title}” and its comments",
    "details.close": "Close",
    "details.timeZone": "Times are in your time zone, {zone}.",
    "details.none": "Nothing was sent for this item.",
    "details.queuedAt": "Queued",
    "details.sentAt": "Sent",
    "details.failedAt": "Failed",
    "details.readAt": "Read",
    "details.acceptedBy": "Accepted by",
    "details.readConfidence": "Opened by",
    "confidence.HUMAN": "the recipient's mail app",
    "confidence.PROXY": "an image proxy for the recipient",
    "confidence.MACHINE": "a machine (a security scanner or a prefetch)",
    "details.attempts": "Attempts",
    "details.error": "Error",
    "details.permanent": "permanent",
    "details.temporary": "temporary",
    "details.history": "History ({count})",
    "details.resend": "Resend",
    "details.resending": "Resending…",
    "details.heldUntil": "Held back until",
    "details.suppressed": "This address is suppressed since {since} because {reason}.",
    "details.lift": "Lift suppression",
    "details.lifting": "Lifting…",

    "channel.EMAIL": "Email",
    "channel.TELEGRAM": "Telegram",
    "channel.WHATSAPP": "WhatsApp",
    "channel.SMS": "SMS",
    "channel.WEBHOOK": "Webhook",
    "channel.IN_APP": "In-app",

    "event.queued": "queued",
    "event.sent": "sent",
    "event.failed": "failed",
    "event.opened": "opened",
    "event.read": "read",
    "event.retry_scheduled": "retry scheduled",
    "event.resend_requested": "resend requested",
    "event.delivered": "delivered",
    "event.bounced": "bounced",

    "form.saving": "Saving…",
  },
  ru: {
    "app.skip": "Перейти к задачам",
    "header.language": "Язык",
    "header.mailbox": "Почтовый ящик",
    "header.mailboxTitle":
      "Встроенный перехватчик почты: откройте там письмо, чтобы загрузился пиксель отслеживания",
    "header.signOut": "Выйти",
    "header.account": "{name} · {plan}",
    "header.freePlan":
      "Отслеживание доставки есть в тарифах PAID и PREMIUM: в этом аккаунте значки не показываются.",
    "live.connecting": "Подключение…",
    "live.online": "В реальном времени",
    "live.onlineTitle": "Значки обновляются при каждом изменении доставки",
    "live.offline": "Нет связи, переподключение…",
    "live.offlineTitle": "Соединение прервалось; пропущенные изменения загрузятся после переподключения",

    "signIn.title": "Вход",
    "signIn.help":
      "Вставьте API-токен. При первом запуске python main.py serve печатает токен демо-аккаунта («sign-in token»).",
    "signIn.token": "API-токен",
    "signIn.submit": "Войти",
    "signIn.empty": "Введите токен.",
    "signIn.bad": "Токен не принят. Проверьте, что он скопирован целиком: он начинается с «bcn_».",
    "signIn.expired": "Ваш токен больше не действует. Войдите снова.",
    "error.network": "Сервер не ответил: {message}",

    "tasks.title": "Задачи",
    "tasks.empty": "Задач пока нет: создайте первую ниже.",
    "tasks.more": "Показать ещё задачи",
    "newTask.title": "Новая задача",
    "newTask.name": "Название",
    "newTask.subscribers": "Подписчики (получат письмо)",
    "newTask.noPeople": "Подписать пока некого: сначала добавьте контакт.",
    "newTask.submit": "Создать задачу",
    "newTask.created": "Задача «{title}» создана.",
    "person.you": "(вы)",
    "person.title": "Новый контакт",
    "person.name": "Имя",
    "person.email": "Эл. почта",
    "person.submit": "Добавить контакт",
    "person.added": "Контакт {name} добавлен.",

    "feed.empty": "Выберите задачу слева или создайте новую.",
    "feed.loading": "Загрузка…",
    "feed.created": "Создана {time}",
    "feed.subscribers": "Подписчики: {names}",
    "feed.nobody": "никого",
    "feed.taskStatus": "Уведомление о задаче:",
    "feed.comments": "Комментарии",
    "feed.showSystem": "Показывать системные комментарии",
    "feed.noComments": "Комментариев пока нет.",
    "feed.system": "Системный",
    "feed.more": "Показать ещё комментарии",
    "feed.noAuthor": "Автоматизация",
    "feed.notFound": "Такой задачи нет, или она принадлежит другому аккаунту.",
    "comment.label": "Новый комментарий",
    "comment.placeholder": "Напишите комментарий: подписчики получат письмо",
    "comment.submit": "Добавить комментарий",

    "state.QUEUED": "В очереди",
    "state.SENT": "Отправлено",
    "state.FAILED": "Ошибка отправки",
    "state.READ": "Прочитано",
    "hint.QUEUED": "Ожидает отправки",
    "hint.SENT": "Почтовый сервер принял письмо к отправке, или оно отправлено по другому каналу",
    "hint.FAILED": "Не отправлено: причина — в подробностях",
    "hint.READ": "Получатель открыл письмо: дата и время — в подробностях",
    "icon.details": "подробности доставки",
    "icon.count": "{count} из {total}",
    "icon.breakdown": "{recipients}: {counts}",
    "icon.heldBack": "задержано: {count}",
    "icon.heldUntil": "Задержано ограничением частоты: {count}, первое — до {time}",
    "recipients.one": "{count} получатель",
    "recipients.few": "{count} получателя",
    "recipients.many": "{count} получателей",
    "recipients.other": "{count} получателя",

    "details.title": "Подробности доставки",
    "details.forTask": "Задача «{title}»",
    "details.forComment": "Комментарий {author}: «{body}»",
    "details.forTaskAll": "Задача «{title}» и комментарии к ней",
    "details.close": "Закрыть",
    "details.timeZone": "Время указано в вашем часовом поясе, {zone}.",
    "details.none": "Для этого ничего не отправлялось.",
    "details.queuedAt": "В очереди",
    "details.sentAt": "Отправлено",
    "details.failedAt": "Ошибка",
    "details.readAt": "Прочитано",
    "details.acceptedBy": "Принял сервер",
    "details.readConfidence": "Открыл",
    "confidence.HUMAN": "почтовый клиент получателя",
    "confidence.PROXY": "прокси изображений для получателя",
    "confidence.MACHINE": "робот (сканер безопасности или предзагрузка)",
    "details.attempts": "Попыток",
    "details.error": "Ошибка",
    "details.permanent": "постоянная",
    "details.temporary": "временная",
    "details.history": "История ({count})",
    "details.resend": "Отправить снова",
    "details.resending": "Отправляем…",
    "details.heldUntil": "Задержано до",
    "details.suppressed": "Этот адрес заблокирован с {since}, причина: {reason}.",
    "details.lift": "Снять блокировку",
    "details.lifting": "Снимаем…",

    "channel.EMAIL": "Эл. почта",
    "channel.TELEGRAM": "Telegram",
    "channel.WHATSAPP": "WhatsApp",
    "channel.SMS": "SMS",
    "channel.WEBHOOK": "Вебхук",
    "channel.IN_APP": "В приложении",

    "event.queued": "в очереди",
    "event.sent": "отправлено",
    "event.failed": "ошибка",
    "event.opened": "открыто",
    "event.read": "прочитано",
    "event.retry_scheduled": "повтор запланирован",
    "event.resend_requested": "запрошена повторная отправка",
    "event.delivered": "доставлено",
    "event.bounced": "возврат письма",

    "form.saving": "Сохранение…",
  },
};

let current = detectLanguage();
const listeners = new Set();

function detectLanguage() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored && stored in MESSAGES) return stored;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (primary in MESSAGES) return primary;
  }
  return "en";
}

export function language() {
  return current;
}

export function setLanguage(lang) {
  if (!(lang in MESSAGES) || lang === current) return;
  current = lang;
  localStorage.setItem(STORAGE_KEY, lang);
  document.documentElement.lang = lang;
  for (const listener of listeners) listener(lang);
}

/** Call `listener(lang)` after every switch: views re-render their text. */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/** The message for `key`, with {placeholders} filled from `params`. */
export function t(key, params = {}) {
  const template = MESSAGES[current][key] ?? MESSAGES.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    name in params ? String(params[name]) : match,
  );
}

/** "3 recipients" / "3 получателя": the plural form that the language needs. */
export function plural(key, count) {
  const form = new Intl.PluralRules(current).select(count);
  const forms = MESSAGES[current];
  const chosen = `${key}.${form}` in forms ? `${key}.${form}` : `${key}.other`;
  return t(chosen, { count });
}

export function stateLabel(state) {
  return t(`state.${state}`);
}

export function eventLabel(type) {
  const key = `event.${type}`;
  return key in MESSAGES[current] ? t(key) : type.replaceAll("_", " ");
}

/**
 * The locale for dates: the browser's own tag when it is of the chosen language (so an
 * en-GB reader keeps a 24-hour clock), else the chosen language.
 */
function dateLocale() {
  const browser = navigator.language || current;
  return browser.toLowerCase().split("-")[0] === current ? browser : current;
}

/** A UTC ISO timestamp from the API, shown in the viewer's own time zone. */
export function formatDateTime(iso) {
  return new Intl.DateTimeFormat(dateLocale(), {
    dateStyle: "medium",
    timeStyle: "medium",
  }).format(new Date(iso));
}

export function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/**
 * Fill the static text of index.html: data-i18n sets textContent; data-i18n-title,
 * data-i18n-placeholder and data-i18n-aria-label set those attributes.
 */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const [attribute, name] of [
    ["i18nTitle", "title"],
    ["i18nPlaceholder", "placeholder"],
    ["i18nAriaLabel", "aria-label"],
  ]) {
    const selector = `[data-${attribute.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const node of root.querySelectorAll(selector)) {
      node.setAttribute(name, t(node.dataset[attribute]));
    }
  }
}
