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
    "header.viewer": "{name} · {role}",
    "bell.title": "Notifications",
    "bell.markAll": "Mark all read",
    "bell.empty": "No notifications yet.",
    "bell.label": "Notifications, {count} unread",
    "invitePanel.title": "Invite a teammate",
    "invitePanel.name": "Teammate",
    "invitePanel.email": "Their address",
    "invitePanel.submit": "Send invitation",
    "invitePanel.sent": "Invitation sent to {name} ({email}).",
    "invite.title": "You are invited",
    "invite.help": "Accept to get your own API token and sign in. The link works once, within 7 days.",
    "invite.accept": "Accept and sign in",
    "invite.accepting": "Signing you in…",
    "invite.token": "Your API token, shown only now. Keep it somewhere safe to sign in on another device:",
    "invite.continue": "Continue",
    "invite.refused": "This invitation link was already used or has expired. Ask for a new one.",
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
    "feed.back": "↑ Back to the tasks",
    "rates.title": "Delivery rates",
    "rates.help": "The last 7 days, by UTC day.",
    "rates.channel": "Channel",
    "rates.allChannels": "All channels",
    "rates.sent": "Sent",
    "rates.failed": "Failed",
    "rates.readByPeople": "Read by people",
    "rates.readByMachines": "Opened by machines",
    "rates.bounced": "Bounced",
    "rates.summary":
      "Last {days} days: {sent} sent, {failed} failed, {readByPeople} read by people, {readByMachines} opened by machines, {bounced} bounced",
    "feed.created": "Created {time}",
    "feed.subscribers": "Subscribers: {names}",
    "feed.nobody": "nobody",
    "feed.taskStatus": "Task notification:",
    "feed.comments": "Comments",
    "feed.showSystem": "Show system comments",
    "feed.noComments": "No comments yet.",
    "feed.system": "System",
    "feed.more": "Show earlier comments",
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

    // A delivery's history (js/history.js): a sentence per event type. "{key}.said"
    // is the same sentence quoting what the server or provider said.
    "history.quote": "“{text}”",
    "history.queued": "Queued for sending.",
    "history.resendRequested": "Sending again was requested.",
    "history.sent": "Sent.",
    "history.sent.said": "Sent; the answer was {said}.",
    "history.sent.by": "Accepted by {host}.",
    "history.sent.by.said": "Accepted by {host}, which answered {said}.",
    "history.sent.id": "Accepted as message {id}.",
    "history.sent.id.by": "Accepted by {host} as message {id}.",
    "history.sent.inApp": "Put in the recipient's in-app inbox.",
    "history.providerSent": "The provider sent it on to the recipient.",
    "history.delivered": "The recipient's mail server reported it delivered.",
    "history.delivered.said": "The recipient's mail server reported it delivered: {said}.",
    "history.delivered.provider": "The provider reported it delivered to the recipient.",
    "history.delayed": "Delivery is delayed; the mail server keeps trying.",
    "history.delayed.said": "Delivery is delayed; the mail server keeps trying: {said}.",
    "history.opened": "Opened by {who} — {why}, {where}.",
    "history.opened.rule": "by the rule {rule}",
    "history.opened.fast": "{seconds} s after sending",
    "history.opened.network": "from the network “{network}”",
    "history.opened.unknownNetwork": "from an unknown network",
    "history.opened.notCounted": "Not counted as a read.",
    "history.opened.shared": "The email went to {recipients} at once; any of them may have opened it.",
    "history.opened.plain": "The email was opened.",
    "history.opened.plain.said": "The email was opened: {said}.",
    "history.read": "The recipient read it.",
    "history.read.inApp": "Marked read in the app.",
    "history.retry": "Attempt {attempt} did not go through ({said}); the next is at {time}.",
    "history.retry.plain": "Another attempt was scheduled.",
    "history.retry.plain.said": "Another attempt was scheduled: {said}.",
    "history.rateLimited":
      "Held back: this address already got {emails} within {window}; the next try is at {time}.",
    "history.rateLimited.plain": "Held back by the limit on emails to one address.",
    "history.rateLimited.plain.said": "Held back by the limit on emails to one address: {said}.",
    "history.failed": "Sending failed.",
    "history.failed.said": "Sending failed: {said}.",
    "history.failed.gaveUp": "Gave up after {attempts} attempts; the last answer was {said}.",
    "history.bounced": "The email bounced: the recipient's mail server returned it.",
    "history.bounced.said": "The email bounced: {said}.",
    "history.suppressed": "The address is on the suppression list: no more mail goes to it.",
    "history.suppressed.said": "The address is on the suppression list ({said}): no more mail goes to it.",
    "history.suppressed.because": "The address is on the suppression list {reason}: no more mail goes to it.",
    "history.reason.hardBounce": "after a hard bounce ({said})",
    "history.reason.complaint": "after a spam complaint ({said})",
    "history.reason.botBlocked": "because the recipient blocked the bot ({said})",
    "history.autoReply": "An automatic reply came back (out of office or the like).",
    "history.autoReply.said": "An automatic reply came back: {said}.",
    "history.complaint": "The recipient marked the email as spam.",
    "history.complaint.said": "The recipient marked the email as spam: {said}.",
    "history.other": "Another event was recorded: “{type}”.",
    "history.other.said": "Another event was recorded: “{type}”, {said}.",
    "emails.one": "{count} email",
    "emails.other": "{count} emails",

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
    "header.viewer": "{name} · {role}",
    "bell.title": "Уведомления",
    "bell.markAll": "Прочитать все",
    "bell.empty": "Уведомлений пока нет.",
    "bell.label": "Уведомления, непрочитанных: {count}",
    "invitePanel.title": "Пригласить коллегу",
    "invitePanel.name": "Коллега",
    "invitePanel.email": "Адрес коллеги",
    "invitePanel.submit": "Отправить приглашение",
    "invitePanel.sent": "Приглашение отправлено: {name} ({email}).",
    "invite.title": "Вас пригласили",
    "invite.help": "Примите приглашение, чтобы получить свой API-токен и войти. Ссылка действует один раз, 7 дней.",
    "invite.accept": "Принять и войти",
    "invite.accepting": "Входим…",
    "invite.token": "Ваш API-токен, он показан только сейчас. Сохраните его, чтобы войти на другом устройстве:",
    "invite.continue": "Продолжить",
    "invite.refused": "Эта ссылка уже использована или устарела. Попросите новое приглашение.",
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
    "feed.back": "↑ К списку задач",
    "rates.title": "Доставка",
    "rates.help": "Последние 7 дней, по суткам UTC.",
    "rates.channel": "Канал",
    "rates.allChannels": "Все каналы",
    "rates.sent": "Отправлено",
    "rates.failed": "Ошибки",
    "rates.readByPeople": "Прочитано людьми",
    "rates.readByMachines": "Открыто машинами",
    "rates.bounced": "Возвраты",
    "rates.summary":
      "За {days} дней: отправлено {sent}, ошибок {failed}, прочитано людьми {readByPeople}, открыто машинами {readByMachines}, возвратов {bounced}",
    "feed.created": "Создана {time}",
    "feed.subscribers": "Подписчики: {names}",
    "feed.nobody": "никого",
    "feed.taskStatus": "Уведомление о задаче:",
    "feed.comments": "Комментарии",
    "feed.showSystem": "Показывать системные комментарии",
    "feed.noComments": "Комментариев пока нет.",
    "feed.system": "Системный",
    "feed.more": "Показать более ранние комментарии",
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

    "history.quote": "«{text}»",
    "history.queued": "Поставлено в очередь на отправку.",
    "history.resendRequested": "Запрошена повторная отправка.",
    "history.sent": "Отправлено.",
    "history.sent.said": "Отправлено; ответ: {said}.",
    "history.sent.by": "Принято сервером {host}.",
    "history.sent.by.said": "Принято сервером {host}, ответ: {said}.",
    "history.sent.id": "Принято как сообщение {id}.",
    "history.sent.id.by": "Принято сервером {host} как сообщение {id}.",
    "history.sent.inApp": "Доставлено во входящие получателя в приложении.",
    "history.providerSent": "Провайдер отправил сообщение получателю.",
    "history.delivered": "Почтовый сервер получателя сообщил о доставке.",
    "history.delivered.said": "Почтовый сервер получателя сообщил о доставке: {said}.",
    "history.delivered.provider": "Провайдер сообщил о доставке получателю.",
    "history.delayed": "Доставка задерживается; почтовый сервер продолжает попытки.",
    "history.delayed.said": "Доставка задерживается; почтовый сервер продолжает попытки: {said}.",
    "history.opened": "Открыто: {who} — {why}, {where}.",
    "history.opened.rule": "по правилу {rule}",
    "history.opened.fast": "через {seconds} с после отправки",
    "history.opened.network": "из сети «{network}»",
    "history.opened.unknownNetwork": "из неизвестной сети",
    "history.opened.notCounted": "Не считается прочтением.",
    "history.opened.shared": "Одно письмо ушло всем получателям (их {count}): открыть его мог любой из них.",
    "history.opened.plain": "Письмо открыто.",
    "history.opened.plain.said": "Письмо открыто: {said}.",
    "history.read": "Получатель прочитал сообщение.",
    "history.read.inApp": "Отмечено прочитанным в приложении.",
    "history.retry": "Попытка {attempt} не удалась ({said}); следующая — {time}.",
    "history.retry.plain": "Запланирована ещё одна попытка.",
    "history.retry.plain.said": "Запланирована ещё одна попытка: {said}.",
    "history.rateLimited":
      "Отложено: на этот адрес уже ушло {emails} за {window}; следующая попытка — {time}.",
    "history.rateLimited.plain": "Отложено: превышен лимит писем на один адрес.",
    "history.rateLimited.plain.said": "Отложено: превышен лимит писем на один адрес: {said}.",
    "history.failed": "Отправка не удалась.",
    "history.failed.said": "Отправка не удалась: {said}.",
    "history.failed.gaveUp": "Отправка прекращена после попыток: {attempts}; последний ответ: {said}.",
    "history.bounced": "Письмо вернулось: почтовый сервер получателя его не принял.",
    "history.bounced.said": "Письмо вернулось: {said}.",
    "history.suppressed": "Адрес в списке блокировки: писем на него больше не отправляем.",
    "history.suppressed.said": "Адрес в списке блокировки ({said}): писем на него больше не отправляем.",
    "history.suppressed.because": "Адрес в списке блокировки {reason}: писем на него больше не отправляем.",
    "history.reason.hardBounce": "после жёсткого возврата ({said})",
    "history.reason.complaint": "после жалобы на спам ({said})",
    "history.reason.botBlocked": "— получатель заблокировал бота ({said})",
    "history.autoReply": "Пришёл автоответ (например, «нет на месте»).",
    "history.autoReply.said": "Пришёл автоответ: {said}.",
    "history.complaint": "Получатель пометил письмо как спам.",
    "history.complaint.said": "Получатель пометил письмо как спам: {said}.",
    // The raw type is English: a Russian reader is not shown it.
    "history.other": "Записано другое событие доставки.",
    "history.other.said": "Записано другое событие доставки: {said}.",
    "emails.one": "{count} письмо",
    "emails.few": "{count} письма",
    "emails.many": "{count} писем",
    "emails.other": "{count} письма",

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
