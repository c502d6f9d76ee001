//! The workload: what a WhatsApp support bot of an online shop is asked, generated from the
//! scenario's seed.
//!
//! Both workers must run the *same* jobs (the Go worker fetches them from `GET /mock/jobs`, the
//! Rust worker may generate them in-process), so the generator is a pure function of the
//! scenario: the same scenario gives byte-identical JSON.
//!
//! Customers write the way WhatsApp users do: short, English or Indonesian, emoji, order numbers
//! and product names. A *long* job is a conversation of 30–80 messages whose last messages carry
//! pasted order logs and product lists. Their sizes are derived from the scenario's smallest
//! context window `W` (never hard-coded): the three pastes are about 0.35–0.5 W, 0.4–0.65 W and
//! 0.3–0.5 W tokens, at 7, 5 and 3 messages from the end of the history. So a client that keeps
//! the last 10 messages always overflows `W`, one that keeps the last 5 overflows whenever the
//! two newest pastes are large (often), while a token-exact trim of older turns fits, because
//! the newest message and the short turns after the pastes are small.
//!
//! Flagged messages (`flagged_share`) carry the fixed phrase [`FLAGGED_MARKER`]; the mock
//! answers a request whose last user message contains it with OpenRouter's 403 moderation error.

use llm_resilience::tokens::{TokenCounter, UpperBound};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::scenario::Scenario;

/// The phrase the generator puts into a flagged message, and the mock's moderator looks for in
/// the last user message of a request.
pub const FLAGGED_MARKER: &str = "[moderation-test: threatening message]";

/// The workload served at `GET /mock/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jobs {
    /// The scenario's name.
    pub scenario: String,
    /// The bot's system prompt.
    pub system_prompt: String,
    /// The knowledge base, most relevant first.
    pub documents: Vec<Document>,
    /// The customer messages, by arrival time.
    pub jobs: Vec<Job>,
}

/// One knowledge-base document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// A stable id (`faq-shipping`).
    pub id: String,
    /// Its text.
    pub text: String,
}

/// One chat message of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// One customer message to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// `job-0001`, …
    pub id: String,
    /// `chat-017`, …
    pub session: String,
    /// When the job enters the queue, ms after the run started.
    pub arrive_ms: u64,
    /// A long conversation (see the module documentation).
    pub long: bool,
    /// The worker should stream the answer.
    pub stream: bool,
    /// The message carries [`FLAGGED_MARKER`].
    pub flagged: bool,
    /// The conversation so far, oldest first.
    pub history: Vec<ChatMessage>,
    /// The customer's new message.
    pub message: String,
}

const SYSTEM_PROMPT: &str = "You are Sari, the customer-support assistant of Toko Nusantara, an online shop for \
electronics, home goods and fashion that ships across Indonesia and Singapore. You answer customers on WhatsApp. \
Reply in the customer's language (English or Bahasa Indonesia), in at most three short paragraphs, friendly and \
precise. Use only the knowledge-base documents you are given and the order details the customer pasted; never \
invent order statuses, prices or tracking numbers. If a customer is angry, apologise once and solve the problem. \
Escalate to a human agent (say: \"Saya teruskan ke tim kami\" / \"I'm passing this to our team\") for refunds above \
Rp 5.000.000, legal threats or anything you cannot verify. Never ask for passwords, OTP codes or full card numbers.";

const DOCUMENTS: [(&str, &str); 6] = [
    (
        "faq-shipping",
        "Shipping: orders paid before 14:00 WIB ship the same day (Mon–Sat). JNE REG 2–4 days, JNE YES next day in \
Java, SiCepat HALU 3–5 days, GoSend Instant within Jabodetabek in 3 hours. Free shipping for orders above Rp 250.000 \
with code GRATISONGKIR. Tracking numbers appear in the order page once the courier scans the parcel, usually within \
12 hours of shipping. Singapore orders ship via Ninja Van, 5–8 days, duties paid by the customer.",
    ),
    (
        "faq-returns",
        "Returns: unused items in original packaging can be returned within 7 days of delivery (electronics: 14 days \
if defective). Open a return in the order page, choose the reason, upload an unboxing video for damaged items. \
Refunds go to the original payment method within 3–7 working days after the warehouse inspects the item; \
e-wallet refunds (GoPay, OVO, DANA) within 24 hours. Shipping costs are refunded only when the item was wrong or \
defective.",
    ),
    (
        "faq-payment",
        "Payment: bank transfer (BCA, Mandiri, BNI, BRI virtual accounts), QRIS, GoPay, OVO, DANA, ShopeePay, credit \
cards (Visa, Mastercard, JCB) and PayLater (Kredivo, Akulaku). Virtual accounts expire after 24 hours; an expired \
order is cancelled automatically and the stock released. Cicilan 0% for 3, 6 or 12 months on BCA and Mandiri cards \
for orders above Rp 1.500.000.",
    ),
    (
        "faq-warranty",
        "Warranty: electronics carry the official distributor warranty (TAM, Erajaya, Digimap) of 12 months unless \
the product page says otherwise. Claims need the invoice from the order page and the serial number. Toko Nusantara \
handles the pickup for free within Java. Physical damage, water damage and opened seals on software are not covered.",
    ),
    (
        "promo-1212",
        "Promo 12.12: 12% off electronics up to Rp 300.000 with code NUSA1212, one use per customer, until 12 December \
23:59 WIB. Flash sale items (marked ⚡) cannot be combined with vouchers. Cashback from GoPay appears within 3 days.",
    ),
    (
        "store-info",
        "Toko Nusantara customer care: WhatsApp +62 811-0000-1212, 08:00–22:00 WIB every day. Pickup point: Jl. Kemang \
Raya 18, Jakarta Selatan, Mon–Sat 10:00–19:00. Human agents answer escalations within 2 working hours.",
    ),
];

const PRODUCTS: [&str; 16] = [
    "Xiaomi Redmi Note 13 Pro 8/256GB",
    "Samsung Galaxy A55 5G 8/128GB",
    "Apple AirPods Pro (2nd gen) USB-C",
    "Logitech MX Master 3S",
    "Philips Air Fryer HD9252",
    "Miyako Rice Cooker MCM-528",
    "Sharp Kulkas 2 Pintu SJ-236MG",
    "Anker PowerCore 20000mAh",
    "Batik Keris Kemeja Pria Lengan Panjang",
    "Eiger Ransel Laptop 25L",
    "Uniqlo AIRism Kaos Oversized",
    "Polytron Smart TV 43\" PLD 43AG9953",
    "Cosori Dehydrator CP267",
    "TP-Link Deco X20 (2-pack)",
    "Lenovo IdeaPad Slim 3 14\" Ryzen 5",
    "Oxone Blender OX-863",
];

const EN_MESSAGES: [&str; 14] = [
    "Hi, where is my order {order}? It's been 4 days already 😩",
    "hello, can I still change the address for {order}? I moved last week 🙏",
    "The {product} I got doesn't turn on. Order {order}. What do I do??",
    "Do you have the {product} in stock? Need it before the weekend 😊",
    "I paid by BCA virtual account but {order} still says unpaid 😡",
    "Can I use NUSA1212 on the {product}?",
    "my parcel for {order} arrived damaged, box was crushed 📦💔",
    "How long is the warranty on the {product}?",
    "Is there cicilan 0% for the {product}? thanks!",
    "I want to return the {product} from {order}, wrong colour 😅",
    "Refund for {order} not received yet, it's been a week",
    "can you send to Singapore? 🇸🇬",
    "ok thanks 👍 one more thing, is GoSend available in Bekasi?",
    "Why was my order {order} cancelled?? I paid on time!!",
];

const ID_MESSAGES: [&str; 14] = [
    "Kak, pesanan {order} kok belum sampai ya? Udah 4 hari 😭",
    "min, alamat pengiriman {order} bisa diganti gak? 🙏",
    "{product} yang saya terima gak bisa nyala kak. Order {order}. Gimana ini??",
    "Kak {product} ready stok gak? Mau buat kado 🎁",
    "Sudah transfer BCA VA tapi status {order} masih belum dibayar 😡",
    "Kode NUSA1212 bisa dipakai buat {product} gak kak?",
    "Paket {order} sampai rusak kak, dusnya penyok 📦💔",
    "Garansi {product} berapa lama ya kak?",
    "Ada cicilan 0% buat {product}? makasih kak 🙏",
    "Mau retur {product} dari {order}, warnanya salah 😅",
    "Refund {order} belum masuk kak, sudah seminggu",
    "Bisa COD gak kak? 😊",
    "oke makasih kak 👍 satu lagi, GoSend bisa ke Bekasi?",
    "Kenapa pesanan {order} dibatalkan?? Saya bayar tepat waktu!!",
];

const EN_REPLIES: [&str; 6] = [
    "Thanks for waiting! I checked {order}: it was handed to JNE yesterday and should arrive within 2 days. 😊",
    "I'm sorry about that. Please open a return from the order page and upload an unboxing video; we'll pick it up for free.",
    "Yes, the {product} is in stock and ships today if you pay before 14:00 WIB.",
    "The payment is confirmed now, {order} will ship today. Anything else I can help with?",
    "I'm passing this to our team; a human agent will reply within 2 working hours 🙏",
    "Sure! Cicilan 0% is available for 3, 6 or 12 months with BCA and Mandiri cards.",
];

const ID_REPLIES: [&str; 6] = [
    "Terima kasih sudah menunggu kak! Pesanan {order} sudah diserahkan ke JNE kemarin, estimasi tiba 2 hari lagi 😊",
    "Mohon maaf ya kak. Silakan ajukan retur di halaman pesanan dan unggah video unboxing, kurir kami jemput gratis.",
    "Stok {product} ready kak, dikirim hari ini kalau bayar sebelum jam 14:00 WIB.",
    "Pembayaran sudah terkonfirmasi kak, {order} dikirim hari ini. Ada lagi yang bisa dibantu?",
    "Saya teruskan ke tim kami ya kak, agen kami akan membalas dalam 2 jam kerja 🙏",
    "Bisa kak! Cicilan 0% tersedia 3, 6 atau 12 bulan dengan kartu BCA dan Mandiri.",
];

const EN_PASTE_INTRO: [&str; 3] = [
    "here is what the tracking page shows, please read it all 🙏",
    "I copied my whole order list, which of these can still be returned?",
    "this is the log from the app, something is wrong:",
];

const ID_PASTE_INTRO: [&str; 3] = [
    "ini yang muncul di halaman lacak kak, tolong dibaca semua 🙏",
    "saya copas semua daftar pesanan saya, mana yang masih bisa diretur?",
    "ini log dari aplikasinya kak, ada yang aneh:",
];

const EN_LAST: [&str; 4] = [
    "So can you tell me which order is stuck? 😤",
    "so which ones can I return? thanks 🙏",
    "Please just tell me when it arrives 😩",
    "ok so what now??",
];

const ID_LAST: [&str; 4] = [
    "Jadi pesanan mana yang nyangkut kak? 😤",
    "jadi yang mana aja yang bisa diretur kak? makasih 🙏",
    "Tolong kasih tau kapan sampainya kak 😩",
    "terus gimana kak??",
];

/// Counts tokens exactly (o200k_base) when the tables load, else with the core's upper bound.
pub(crate) struct Counter {
    exact: Option<llm_resilience::tokens::Tokenizer>,
}

impl Counter {
    /// The process-wide counter (the tables are loaded once).
    pub(crate) fn get() -> &'static Counter {
        static COUNTER: std::sync::OnceLock<Counter> = std::sync::OnceLock::new();
        COUNTER.get_or_init(|| Counter {
            exact: llm_resilience::tokens::Tokenizer::new(
                llm_resilience::tokens::Encoding::O200kBase,
            )
            .ok(),
        })
    }

    /// Tokens of one text.
    pub(crate) fn text(&self, text: &str) -> u64 {
        match &self.exact {
            Some(t) => t
                .count_text(text)
                .unwrap_or_else(|_| UpperBound::bound(text)),
            None => UpperBound::bound(text),
        }
    }

    /// Tokens of a chat request (messages plus the chat overhead).
    pub(crate) fn messages(&self, messages: &[llm_resilience::chat::Message]) -> u64 {
        match &self.exact {
            Some(t) => t.count_messages(messages, &[]).unwrap_or_else(|_| {
                messages
                    .iter()
                    .map(|m| UpperBound::bound(&m.content) + 4)
                    .sum::<u64>()
                    + 3
            }),
            None => {
                messages
                    .iter()
                    .map(|m| UpperBound::bound(&m.content) + 4)
                    .sum::<u64>()
                    + 3
            }
        }
    }
}

/// Generates the workload of a scenario (deterministic: see the module documentation).
pub fn generate(scenario: &Scenario) -> Jobs {
    let w = &scenario.workload;
    let mut rng = Rng::new(scenario.seed);
    let window = scenario.smallest_window();
    let sessions = w.sessions.max(1);
    // A session's language and customer are fixed for the whole run.
    let indonesian: Vec<bool> = (0..sessions)
        .map(|_| rng.chance(w.indonesian_share))
        .collect();
    let mut arrivals: Vec<u64> = (0..w.jobs)
        .map(|_| {
            if w.arrival_ms == 0 {
                0
            } else {
                rng.range(0, w.arrival_ms - 1)
            }
        })
        .collect();
    arrivals.sort_unstable();
    let mut jobs = Vec::with_capacity(w.jobs as usize);
    for (i, arrive_ms) in arrivals.into_iter().enumerate() {
        let s = rng.range(0, u64::from(sessions) - 1) as usize;
        let id_lang = indonesian.get(s).copied().unwrap_or(false);
        let long = rng.chance(w.long_share);
        let stream = rng.chance(w.stream_share);
        let flagged = rng.chance(w.flagged_share);
        let (history, mut message) = if long {
            long_conversation(&mut rng, id_lang, window)
        } else {
            short_conversation(&mut rng, id_lang)
        };
        if flagged {
            message = format!("{message} {FLAGGED_MARKER}");
        }
        jobs.push(Job {
            id: format!("job-{:04}", i + 1),
            session: format!("chat-{:03}", s + 1),
            arrive_ms,
            long,
            stream,
            flagged,
            history,
            message,
        });
    }
    Jobs {
        scenario: scenario.name.clone(),
        system_prompt: SYSTEM_PROMPT.to_string(),
        documents: DOCUMENTS
            .iter()
            .map(|(id, text)| Document {
                id: (*id).to_string(),
                text: (*text).to_string(),
            })
            .collect(),
        jobs,
    }
}

fn order_number(rng: &mut Rng) -> String {
    format!("TN-2611-{:05}", rng.range(10_000, 99_999))
}

fn fill(rng: &mut Rng, template: &str) -> String {
    let order = order_number(rng);
    let product = rng
        .pick(&PRODUCTS)
        .copied()
        .unwrap_or("Anker PowerCore 20000mAh");
    template
        .replace("{order}", &order)
        .replace("{product}", product)
}

fn customer_line(rng: &mut Rng, id_lang: bool) -> String {
    let pool: &[&str] = if id_lang { &ID_MESSAGES } else { &EN_MESSAGES };
    let t = rng.pick(pool).copied().unwrap_or("halo");
    fill(rng, t)
}

fn bot_line(rng: &mut Rng, id_lang: bool) -> String {
    let pool: &[&str] = if id_lang { &ID_REPLIES } else { &EN_REPLIES };
    let t = rng.pick(pool).copied().unwrap_or("ok");
    fill(rng, t)
}

fn msg(role: &str, content: String) -> ChatMessage {
    ChatMessage {
        role: role.to_string(),
        content,
    }
}

/// 0–6 earlier messages, then the new one.
fn short_conversation(rng: &mut Rng, id_lang: bool) -> (Vec<ChatMessage>, String) {
    let pairs = rng.range(0, 3);
    let mut history = Vec::new();
    for _ in 0..pairs {
        history.push(msg("user", customer_line(rng, id_lang)));
        history.push(msg("assistant", bot_line(rng, id_lang)));
    }
    (history, customer_line(rng, id_lang))
}

/// 30–80 messages with three pastes near the end, sized from `window` (see the module docs).
fn long_conversation(rng: &mut Rng, id_lang: bool, window: u64) -> (Vec<ChatMessage>, String) {
    let total = rng.range(30, 80) as usize;
    // Paste targets in thousandths of the window, at 7, 5 and 3 messages from the end.
    let targets = [
        (total - 7, window * rng.range(350, 500) / 1000),
        (total - 5, window * rng.range(400, 650) / 1000),
        (total - 3, window * rng.range(300, 500) / 1000),
    ];
    let mut history = Vec::with_capacity(total);
    for i in 0..total {
        // Alternate user / assistant so that messages an odd distance from the end are the
        // customer's: the pastes (7, 5 and 3 from the end) are user messages, each answered.
        let paste = targets.iter().find(|(at, _)| *at == i).map(|(_, t)| *t);
        let role = if (total - i) % 2 == 1 {
            "user"
        } else {
            "assistant"
        };
        let content = match paste {
            Some(tokens) => paste_text(rng, id_lang, tokens),
            None if role == "user" => customer_line(rng, id_lang),
            None => bot_line(rng, id_lang),
        };
        history.push(msg(role, content));
    }
    let pool: &[&str] = if id_lang { &ID_LAST } else { &EN_LAST };
    let last = rng.pick(pool).copied().unwrap_or("??").to_string();
    (history, last)
}

/// A pasted order log or product list of about `tokens` tokens (counted exactly, line by line).
fn paste_text(rng: &mut Rng, id_lang: bool, tokens: u64) -> String {
    let counter = Counter::get();
    let intro_pool: &[&str] = if id_lang {
        &ID_PASTE_INTRO
    } else {
        &EN_PASTE_INTRO
    };
    let intro = rng.pick(intro_pool).copied().unwrap_or("");
    let kind = rng.range(0, 1);
    let mut text = String::from(intro);
    let mut used = counter.text(&text);
    let statuses_en = [
        "Order placed",
        "Payment confirmed (BCA VA)",
        "Packed at warehouse CGK-2",
        "Handed to courier JNE REG",
        "Arrived at sorting center Cakung",
        "Out for delivery",
        "Delivery failed: recipient not home",
        "Returned to hub",
    ];
    let statuses_id = [
        "Pesanan dibuat",
        "Pembayaran dikonfirmasi (BCA VA)",
        "Dikemas di gudang CGK-2",
        "Diserahkan ke kurir JNE REG",
        "Tiba di sortir Cakung",
        "Sedang diantar",
        "Gagal antar: penerima tidak di tempat",
        "Dikembalikan ke hub",
    ];
    let mut n = 0u64;
    while used < tokens {
        n += 1;
        let line = if kind == 0 {
            let st = if id_lang {
                rng.pick(&statuses_id)
            } else {
                rng.pick(&statuses_en)
            }
            .copied()
            .unwrap_or("");
            format!(
                "\n[2026-11-{:02} {:02}:{:02}:{:02} WIB] {} · AWB JNE{:010} · {}",
                rng.range(1, 27),
                rng.range(0, 23),
                rng.range(0, 59),
                rng.range(0, 59),
                order_number(rng),
                rng.range(0, 9_999_999_999),
                st
            )
        } else {
            let product = rng.pick(&PRODUCTS).copied().unwrap_or("");
            format!(
                "\n{n}. {} — {} × Rp {}.{:03} — {}",
                product,
                rng.range(1, 3),
                rng.range(49, 18_999),
                rng.range(0, 999),
                order_number(rng)
            )
        };
        used += counter.text(&line);
        text.push_str(&line);
    }
    text
}
