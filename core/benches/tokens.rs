//! Token counting throughput: our `count_text` against tiktoken-rs's own raw `encode_ordinary`
//! on the same text, side by side in one run (and the table-free upper bound beside them):
//! `cargo bench -p llm-resilience --features tiktoken --bench tokens`.
//!
//! Compare ratios, not absolute numbers (the machine is shared).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm_resilience::tokens::{Encoding, TokenCounter, Tokenizer, UpperBound};
use std::hint::black_box;
use std::time::Duration;

/// A WhatsApp customer-support exchange in Indonesian, with emoji.
const INDONESIAN_CHAT: &str = "\
Halo kak, paket saya dari tgl 12 kok belum nyampe ya? 😭 No resi JNE: JP1234567890
Baik kak, mohon ditunggu ya. Kami cek dulu status pengirimannya 🙏
Kak mau tanya, ini bisa COD gak? Soalnya aku gak punya m-banking 🙏🙏
Bisa kak, untuk wilayah Jabodetabek COD tersedia ya 😊
Udah transfer ya kak, tolong dicek 🙏 Rp 250.000 ke BCA a.n. Toko Sumber Rejeki
Barangnya rusak pas sampai 😡😡 dusnya penyok, botolnya pecah. Gimana nih min??
Mohon maaf atas ketidaknyamanannya kak 🙏 Boleh kirim foto barang dan video unboxing-nya?
Min, promo 11.11 masih berlaku gak? Kode voucher HEMAT50 kok gak bisa dipake 🤔
wkwkwk iya kak gpp, ditunggu aja 😂😂😂
Kak, alamatnya ganti ya: Jl. Merpati No. 7, RT 03/RW 05, Kel. Sukamaju, Kec. Cibinong, Bogor 16911 🏠
Makasih banyak kak, pelayanannya cepet bgt 👍🏽✨ nanti order lagi deh
";

/// An English knowledge-base document, as the bot's retrieval step would insert it.
const ENGLISH_DOCUMENT: &str = "\
Returns and refunds. You can return most items within 30 days of delivery for a full refund, \
provided they are unused and in their original packaging. To start a return, reply to this chat \
with your order number (it starts with INV/ and appears in your confirmation email) and a short \
description of the problem. If the item arrived damaged, please include a photo of the item and \
of the box; an unboxing video speeds things up considerably. Once we approve the return we will \
send you a prepaid shipping label by email. Refunds are issued to the original payment method \
within 3 to 5 business days after the returned item reaches our warehouse; bank transfers can \
take up to 7 business days depending on your bank. Cash-on-delivery orders are refunded by bank \
transfer, so we will ask for your account details. Items marked as final sale, personalised \
items, and opened cosmetics cannot be returned for hygiene reasons. Shipping costs are \
non-refundable unless the return is due to our error (a wrong or defective item). If you would \
like an exchange instead of a refund, tell us the size or colour you want and we will reserve \
it for you while the return is in transit. Questions about a delayed delivery? Check the tracking \
link first: couriers update it once a day, usually in the evening. If the status has not changed \
for more than three days, contact us and we will open an investigation with the courier.
";

/// Emoji-heavy chat: ZWJ sequences, flags, skin tones.
const EMOJI_HEAVY: &str = "\
😂😂😂🙏🙏❤️❤️🔥🔥 👍🏽👍🏿👋🏻🙌🏾 mantap kak!! 🇮🇩🇺🇸🇯🇵🇸🇬 🏳️‍🌈 🏴‍☠️ 👨‍👩‍👧‍👦 👩🏽‍💻 🧑🏾‍🍳 🤦‍♂️ 🏃‍♀️ \
🎉🎉🎉 makasih ya 🥰🥰 😍😍😍 ✨✨ 💯 🙏🏻🙏🏼🙏🏽🙏🏾🙏🏿 👏👏👏 🇲🇾🇹🇭🇻🇳🇵🇭 🫶🏽 🤝 😭😭😭 🤣🤣🤣
";

fn counting(c: &mut Criterion) {
    let texts = [
        ("indonesian-chat", INDONESIAN_CHAT),
        ("english-document", ENGLISH_DOCUMENT),
        ("emoji-heavy", EMOJI_HEAVY),
    ];
    for (encoding, raw) in [
        (Encoding::O200kBase, tiktoken_rs::o200k_base().unwrap()),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base().unwrap()),
    ] {
        let ours = Tokenizer::new(encoding).unwrap();
        let mut group = c.benchmark_group(format!("tokens/{}", encoding.tiktoken_name()));
        for (label, text) in texts {
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function(format!("{label}/count_text"), |b| {
                b.iter(|| ours.count_text(black_box(text)).unwrap())
            });
            group.bench_function(format!("{label}/tiktoken-rs-encode_ordinary"), |b| {
                b.iter(|| raw.encode_ordinary(black_box(text)).len())
            });
        }
        group.finish();
    }
    let bound = UpperBound::default();
    let mut group = c.benchmark_group("tokens/upper-bound");
    for (label, text) in texts {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{label}/count_text"), |b| {
            b.iter(|| bound.count_text(black_box(text)).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = counting
}
criterion_main!(benches);
