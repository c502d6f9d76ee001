//! A deterministic 200-message support conversation (Indonesian and English, emoji, tool
//! calls) with five knowledge-base documents: shared by `tests/trim_native.rs` and
//! `benches/context.rs`.

#![allow(unreachable_pub)]

use llm_resilience::chat::{Message, Role, ToolCall, ToolSchema};

/// `(system, documents, history, latest, tools)`.
pub type Conversation = (String, Vec<String>, Vec<Message>, Message, Vec<ToolSchema>);

/// A deterministic 200-message conversation with tool calls, and five documents.
pub fn conversation() -> Conversation {
    let lines = [
        "Halo kak, pesanan saya belum sampai 😭 sudah 5 hari",
        "Baik kak, mohon ditunggu ya, kami cek dulu 🙏",
        "Can I change the delivery address to Jl. Sudirman No. 12, Jakarta?",
        "Sure! 👍🏽 I have updated it. Anything else?",
        "Kalau mau retur barang gimana caranya kak? 🇮🇩👨‍👩‍👧‍👦",
    ];
    let mut history = Vec::new();
    let mut i = 0;
    while history.len() < 200 {
        let text = format!("{} (#{i})", lines[i % lines.len()]);
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        if i % 17 == 5 {
            let id = format!("call_{i}");
            let mut call = Message::new(Role::Assistant, "");
            call.tool_calls = vec![ToolCall {
                id: id.clone(),
                name: "order_status".into(),
                arguments: format!("{{\"order_id\":\"INV-{i:05}\"}}"),
            }];
            let mut result = Message::new(
                Role::Tool,
                format!("{{\"status\":\"shipped\",\"eta_days\":{}}}", i % 4),
            );
            result.tool_call_id = Some(id);
            history.push(call);
            history.push(result);
        } else {
            history.push(Message::new(role, text.repeat(1 + i % 3)));
        }
        i += 1;
    }
    history.truncate(200);
    let documents = (0..5)
        .map(|d| {
            format!(
                "Kebijakan #{d}: Pengembalian barang dapat dilakukan dalam 7 hari. 📦 Returns are accepted within 7 days of delivery.\n"
            )
            .repeat(20 + d * 10)
        })
        .collect();
    let tools = vec![ToolSchema {
        name: "order_status".into(),
        description: "Look up an order.".into(),
        parameters: r#"{"type":"object","properties":{"order_id":{"type":"string","description":"The invoice number"}},"required":["order_id"]}"#.into(),
    }];
    (
        "Kamu adalah asisten layanan pelanggan toko online. Jawab dengan sopan.".into(),
        documents,
        history,
        Message::new(Role::User, "Jadi kapan paket saya sampai? 🙏"),
        tools,
    )
}
