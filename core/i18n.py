"""Console translations, gettext-style: the message id IS the Indonesian text.

Indonesian is the default (and what a missing translation falls back to); English is the
second language. The choice is stored in the `aduan_lang` cookie.
"""

from __future__ import annotations

LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
DEFAULT = "id"
COOKIE = "aduan_lang"

EN: dict[str, str] = {
    "Masuk": "Sign in", "Keluar": "Sign out", "Nama pengguna": "Username", "Kata sandi": "Password",
    "Nama pengguna atau kata sandi salah.": "Wrong username or password.",
    "Terlalu banyak percobaan gagal. Coba lagi dalam {minutes} menit.":
        "Too many failed attempts. Try again in {minutes} minutes.",
    "Kotak masuk": "Inbox", "Ringkasan": "Overview", "Admin": "Admin", "Pengguna": "Users",
    "Log audit": "Audit log", "Balasan siap pakai": "Canned responses", "Bahasa": "Language",
    "Cari": "Search", "Cari teks, pengirim, atau nomor laporan": "Search text, sender or ticket number",
    "Status": "Status", "OPD": "OPD", "Kanal": "Channel", "Semua": "All", "Urutkan": "Sort",
    "Paling mendesak (SLA)": "Most urgent (SLA)", "Terbaru": "Newest", "Terlama": "Oldest",
    "Antrean triase": "Triage queue", "Terapkan": "Apply", "Nomor": "Number", "Pelapor": "Reporter",
    "Laporan": "Complaint", "Diterima": "Received", "Sisa waktu SLA": "SLA time left",
    "Tidak ada laporan.": "No complaints.", "Sebelumnya": "Previous", "Berikutnya": "Next",
    "Halaman {page} dari {pages} ({total} laporan)": "Page {page} of {pages} ({total} complaints)",
    "terlambat {duration}": "{duration} overdue", "{minutes} menit": "{minutes} min",
    "{hours} jam {minutes} menit": "{hours} h {minutes} min",
    "Percakapan": "Conversation", "Balas": "Reply", "Kirim balasan": "Send reply",
    "Kirim ke semua pelapor": "Send to every reporter", "Pilih balasan siap pakai": "Choose a canned response",
    "Catatan internal": "Internal note", "Tambah catatan": "Add note", "Ubah status": "Change status",
    "Alasan": "Reason", "Alihkan ke OPD lain": "Re-route to another OPD", "Alihkan": "Re-route",
    "Konfirmasi OPD": "Confirm OPD", "Tandai spam": "Mark as spam", "Blokir pengirim": "Block sender",
    "Alasan blokir pengirim": "Reason for blocking the sender", "Gabungkan ke laporan": "Merge into ticket",
    "Gabungkan": "Merge", "Pisahkan": "Split", "Pisahkan pesan ini": "Split this message off",
    "Keputusan klasifikasi": "Classifier decision", "Keyakinan": "Confidence", "Model": "Model",
    "Alasan klasifikasi": "Classifier reasons", "Lokasi": "Location", "Kecamatan": "District",
    "Kelurahan": "Sub-district", "Jalan": "Street", "Patokan": "Landmark", "Foto": "Photos",
    "Jam SLA": "SLA clocks", "Batas respons OPD": "OPD response due", "Batas umpan balik ke warga":
        "Citizen feedback due", "berhenti": "stopped", "Riwayat": "History", "Simpan": "Save",
    "Buat pengguna": "Create user", "Peran": "Role", "Nama tampilan": "Display name", "Aktif": "Active",
    "Nonaktifkan": "Disable", "Aktifkan": "Enable", "Atur ulang kata sandi": "Reset password",
    "Kata sandi baru": "New password", "Waktu": "Time", "Pelaku": "Actor", "Aksi": "Action", "Data": "Data",
    "Judul": "Title", "Teks": "Text", "Hapus": "Delete", "Tambah": "Add",
    "Aksi massal untuk yang dipilih": "Bulk action on the selection", "Pilih": "Select",
    "Anda tidak berhak membuka halaman ini.": "You are not allowed to open this page.",
    "Akses ditolak": "Access denied", "Tidak ditemukan": "Not found",
    "Permintaan ditolak: token keamanan (CSRF) tidak ada atau salah. Muat ulang halaman.":
        "Request refused: the security (CSRF) token is missing or wrong. Reload the page.",
    "pending": "pending", "terkirim": "sent", "tersampaikan": "delivered", "gagal": "failed",
    "Jumlah laporan per status": "Complaints by status", "Jumlah laporan per OPD": "Complaints by OPD",
    "Laporan terbuka": "Open complaints", "Lewat SLA": "SLA breached", "Tidak ada": "None",
    "Disebut": "Mentioned", "Sumber nilai": "Value source", "Pengaturan": "Settings",
    "Tanpa OPD (triase)": "No OPD (triage)", "Semua OPD": "Every OPD", "Kembali ke kotak masuk": "Back to inbox",
    "Balasan Anda diantrekan.": "Your reply is queued.", "Tersimpan.": "Saved.",
    "Pesan masuk": "Inbound", "Balasan": "Reply", "oleh": "by", "Lampiran": "Attachment",
    "Lewati ke isi": "Skip to content", "Penyaring": "Filters", "Bukan keluhan": "Not a complaint",
    "baru": "new", "diteruskan": "routed", "ditanggapi": "responded", "selesai": "resolved", "ditutup": "closed",
    "ditolak": "rejected", "menunggu": "pending", "mengirim": "sending", "dicoba ulang": "retrying",
    "tidak dikirim": "not sent", "belum pasti": "unconfirmed", "tidak tersampaikan": "undelivered",
    "terbuka": "open", "Catatan": "Notes", "Belum ada catatan.": "No notes yet.",
    "Nomor laporan tujuan": "Target ticket number", "Pesan untuk warga (opsional)": "Message to the citizen (optional)",
    "Laporan ini di luar OPD Anda.": "This ticket belongs to another OPD.",
    "menit tersisa": "minutes left", "Kunci": "Key", "Nilai": "Value", "basis data": "database",
    "Kembalikan ke config.yaml": "Back to config.yaml", "Kredensial": "Credentials",
    "URL webhook untuk penyedia": "Webhook URL for the provider", "terisi": "set", "kosong": "missing",
    "Uji koneksi": "Test connection", "Batalkan penggabungan": "Undo merge", "Kirim ulang": "Send again",
    "Menyiapkan kanal baru dan mengisi kredensial dilakukan di config.yaml dan variabel lingkungan, lalu hub dimulai ulang.":
        "New channels are set up and credentials set in config.yaml and environment variables, then the hub is restarted.",
    "Kanal yang dimatikan di sini menolak webhook (HTTP 503, tidak ada yang disimpan) dan berhenti membaca X/Instagram "
    "dalam beberapa detik, tanpa memulai ulang hub; balasan yang sudah antre tetap dikirim.":
        "A channel switched off here refuses its webhooks (HTTP 503, nothing is stored) and stops reading X/Instagram "
        "within seconds, without restarting the hub; replies already queued still go out.",
    "aktif": "on", "dimatikan": "switched off", "tidak diatur": "not set up", "Matikan": "Switch off",
    "Nyalakan": "Switch on", "Kuota baca X bulan ini": "X reads this month",
    "{remaining} dari {budget} tersisa": "{remaining} of {budget} left", "terpakai {used}": "{used} used",
    "terpakai {used}, tanpa batas bulanan": "{used} used, no monthly budget",
    "Dibatasi X sampai {when}": "Rate-limited by X until {when}",
    "Katalog OPD": "OPD catalogue", "Kode": "Code", "Nama": "Name", "Kata kunci": "Keywords",
    "Laporan (terbuka)": "Tickets (open)", "nonaktif": "retired", "Pulihkan": "Restore", "Tambah OPD": "Add OPD",
    "Ubah nama/kata kunci": "Edit name/keywords", "dipisah koma": "comma-separated",
    "Huruf besar, angka dan _, diawali huruf (2–32 karakter).":
        "Capital letters, digits and _, starting with a letter (2–32 characters).",
    "OPD tidak pernah dihapus: laporannya tetap menunjuk ke sana. OPD yang dinonaktifkan tidak menerima laporan baru "
    "(klasifikasi mengirimnya ke triase) dan tidak muncul di menu pengalihan; bisa dipulihkan kapan saja. "
    "Nama dan kata kunci diubah di Pengaturan.":
        "An OPD is never deleted: its tickets keep pointing at it. A retired OPD receives no new tickets (the "
        "classifier sends them to triage) and is not offered for re-routing; it can be restored at any time. "
        "Names and keywords are edited under Settings.",
    "Disebut dalam catatan": "Mentioned in notes", "Tandai semua sudah dibaca": "Mark all as read", "Oleh": "By",
    "belum dibaca": "unread", "dibaca": "read", "Belum ada yang menyebut Anda.": "Nobody has mentioned you yet.",
    "{count} belum dibaca": "{count} unread", "tidak diberi tahu": "not notified",
    "Tidak diberi tahu (tidak berhak melihat laporan ini): {names}":
        "Not notified (not allowed to see this ticket): {names}",
    "Kanal notifikasi": "Notification channel", "Simpan notifikasi": "Save notification",
    "Alamat notifikasi (kosong: hanya di konsol)": "Notification address (empty: console only)",
    "config.yaml dibaca saat mulai; nilai yang diubah di sini disimpan di basis data dan mengalahkan file.":
        "config.yaml is read at start-up; values changed here are stored in the database and win over the file.", "Sebut rekan dengan @nama": "Mention colleagues with @name",
}

STATUS = {"new": "baru", "routed": "diteruskan", "responded": "ditanggapi", "resolved": "selesai",
          "closed": "ditutup", "rejected": "ditolak", "open": "terbuka"}
DELIVERY = {"pending": "menunggu", "sending": "mengirim", "retry": "dicoba ulang", "sent": "terkirim",
            "delivered": "tersampaikan", "failed": "gagal", "suppressed": "tidak dikirim",
            "unconfirmed": "belum pasti", "undelivered": "tidak tersampaikan"}

_CATALOGUES = {"en": EN}


def gettext(lang: str, msgid: str, **values: object) -> str:
    """The text in `lang` (Indonesian when untranslated), with {placeholders} filled."""
    text = _CATALOGUES.get(lang, {}).get(msgid, msgid)
    return text.format(**values) if values else text


def pick(value: str | None) -> str:
    """A supported language code from a cookie or form value."""
    return value if value in LANGUAGES else DEFAULT
