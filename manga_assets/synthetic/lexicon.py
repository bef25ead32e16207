"""Word lists the synthetic generator composes messages from.

Everything is a module-level tuple (or a tuple of pairs) so the lists are immutable,
hashable-free of ordering surprises, and iterate in a fixed order - which keeps the
seeded generator deterministic across processes.

The ``TRAIN`` side (``TITLES``, ``SLANG``...) is what the training generator uses.
``NOVEL_TITLES`` / ``NOVEL_SLANG`` are deliberately disjoint from it: the
"new vocabulary" drift scenario draws only from them, so a model trained on the train
side has never seen these words.  Tests assert the disjointness.

Detection lists (``JARGON``, ``SLANG``, ``NOVEL_SLANG``, ``ROMAJI``) double as the
ground truth for segment tags: a row tagged ``jargon`` must contain a ``JARGON`` term
and an untagged row must contain none, so every phrase that the generator inserts for
a segment must appear (after normalisation) in the matching detection list.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Titles and authors (train vocabulary).  Generic-English titles ("Real",
# "Given", "Orange", "Fire Force"...) are left out on purpose: they would collide
# with ordinary words and slang and make tag/title checks ambiguous.
# ---------------------------------------------------------------------------
TITLES: tuple[tuple[str, str], ...] = (
    ("One Piece", "Eiichiro Oda"),
    ("Berserk", "Kentaro Miura"),
    ("Frieren", "Kanehito Yamada & Tsukasa Abe"),
    ("Vagabond", "Takehiko Inoue"),
    ("Solo Leveling", "Chugong"),
    ("Chainsaw Man", "Tatsuki Fujimoto"),
    ("Jujutsu Kaisen", "Gege Akutami"),
    ("Vinland Saga", "Makoto Yukimura"),
    ("Spy x Family", "Tatsuya Endo"),
    ("Blue Lock", "Muneyuki Kaneshiro & Yusuke Nomura"),
    ("Dandadan", "Yukinobu Tatsu"),
    ("Kagurabachi", "Takeru Hokazono"),
    ("Oshi no Ko", "Aka Akasaka & Mengo Yokoyari"),
    ("Monster", "Naoki Urasawa"),
    ("20th Century Boys", "Naoki Urasawa"),
    ("Dorohedoro", "Q Hayashida"),
    ("Blame!", "Tsutomu Nihei"),
    ("Nana", "Ai Yazawa"),
    ("Fruits Basket", "Natsuki Takaya"),
    ("Yotsuba&!", "Kiyohiko Azuma"),
    ("Witch Hat Atelier", "Kamome Shirahama"),
    ("Delicious in Dungeon", "Ryoko Kui"),
    ("Dungeon Meshi", "Ryoko Kui"),
    ("Mushoku Tensei", "Rifujin na Magonote"),
    ("Re:Zero", "Tappei Nagatsuki"),
    ("Overlord", "Kugane Maruyama"),
    ("Omniscient Reader", "Sing Shong"),
    ("Tower of God", "SIU"),
    ("Tokyo Ghoul", "Sui Ishida"),
    ("Bleach", "Tite Kubo"),
    ("Naruto", "Masashi Kishimoto"),
    ("Hunter x Hunter", "Yoshihiro Togashi"),
    ("Attack on Titan", "Hajime Isayama"),
    ("Pluto", "Naoki Urasawa"),
    ("Goodnight Punpun", "Inio Asano"),
    ("Uzumaki", "Junji Ito"),
    ("Slam Dunk", "Takehiko Inoue"),
    ("Haikyu!!", "Haruichi Furudate"),
    ("Kaiju No. 8", "Naoya Matsumoto"),
    ("Sakamoto Days", "Yuto Suzuki"),
    ("Akane-banashi", "Yuki Suenaga & Takamasa Moue"),
    ("Death Note", "Tsugumi Ohba & Takeshi Obata"),
    ("Fullmetal Alchemist", "Hiromu Arakawa"),
    ("Demon Slayer", "Koyoharu Gotouge"),
    ("My Hero Academia", "Kohei Horikoshi"),
    ("Dragon Ball", "Akira Toriyama"),
    ("Akira", "Katsuhiro Otomo"),
    ("Ghost in the Shell", "Masamune Shirow"),
    ("Neon Genesis Evangelion", "Yoshiyuki Sadamoto"),
    ("JoJo's Bizarre Adventure", "Hirohiko Araki"),
    ("Hellsing", "Kouta Hirano"),
    ("Trigun", "Yasuhiro Nightow"),
    ("Claymore", "Norihiro Yagi"),
    ("Gantz", "Hiroya Oku"),
    ("Parasyte", "Hitoshi Iwaaki"),
    ("Devilman", "Go Nagai"),
    ("Fist of the North Star", "Buronson & Tetsuo Hara"),
    ("Lone Wolf and Cub", "Kazuo Koike & Goseki Kojima"),
    ("Blade of the Immortal", "Hiroaki Samura"),
    ("Ranma 1/2", "Rumiko Takahashi"),
    ("Inuyasha", "Rumiko Takahashi"),
    ("Urusei Yatsura", "Rumiko Takahashi"),
    ("Sailor Moon", "Naoko Takeuchi"),
    ("Cardcaptor Sakura", "CLAMP"),
    ("xxxHolic", "CLAMP"),
    ("Ouran High School Host Club", "Bisco Hatori"),
    ("Kimi ni Todoke", "Karuho Shiina"),
    ("Horimiya", "HERO & Daisuke Hagiwara"),
    ("Kaguya-sama: Love Is War", "Aka Akasaka"),
    ("My Dress-Up Darling", "Shinichi Fukuda"),
    ("Komi Can't Communicate", "Tomohito Oda"),
    ("Skip and Loafer", "Misaki Takamatsu"),
    ("Blue Period", "Tsubasa Yamaguchi"),
    ("Chihayafuru", "Yuki Suetsugu"),
    ("Honey and Clover", "Chica Umino"),
    ("March Comes in Like a Lion", "Chica Umino"),
    ("Mushishi", "Yuki Urushibara"),
    ("Laid-Back Camp", "Afro"),
    ("Barakamon", "Satsuki Yoshino"),
    ("A Silent Voice", "Yoshitoki Oima"),
    ("Wotakoi", "Fujita"),
    ("Nodame Cantabile", "Tomoko Ninomiya"),
    ("Paradise Kiss", "Ai Yazawa"),
    ("Princess Jellyfish", "Akiko Higashimura"),
    ("Yona of the Dawn", "Mizuho Kusanagi"),
    ("The Apothecary Diaries", "Natsu Hyuuga"),
    ("Spice and Wolf", "Isuna Hasekura"),
    ("Sword Art Online", "Reki Kawahara"),
    ("That Time I Got Reincarnated as a Slime", "Fuse"),
    ("The Rising of the Shield Hero", "Aneko Yusagi"),
    ("Konosuba", "Natsume Akatsuki"),
    ("Ascendance of a Bookworm", "Miya Kazuki"),
    ("The Eminence in Shadow", "Daisuke Aizawa"),
    ("Classroom of the Elite", "Shogo Kinugasa"),
    ("Made in Abyss", "Akihito Tsukushi"),
    ("The Promised Neverland", "Kaiu Shirai & Posuka Demizu"),
    ("Dr. Stone", "Riichiro Inagaki & Boichi"),
    ("Black Clover", "Yuki Tabata"),
    ("Hell's Paradise", "Yuji Kaku"),
    ("Mob Psycho 100", "ONE"),
    ("One-Punch Man", "ONE & Yusuke Murata"),
    ("Mashle", "Hajime Komoto"),
    ("Kingdom", "Yasuhisa Hara"),
    ("Hajime no Ippo", "George Morikawa"),
    ("Ashita no Joe", "Asao Takamori & Tetsuya Chiba"),
    ("Kuroko's Basketball", "Tadatoshi Fujimaki"),
    ("Yowamushi Pedal", "Wataru Watanabe"),
    ("Eyeshield 21", "Riichiro Inagaki & Yusuke Murata"),
    ("Hikaru no Go", "Yumi Hotta & Takeshi Obata"),
    ("Bakuman", "Tsugumi Ohba & Takeshi Obata"),
    ("Ao Ashi", "Yugo Kobayashi"),
    ("Ping Pong", "Taiyo Matsumoto"),
    ("Tekkonkinkreet", "Taiyo Matsumoto"),
    ("Solanin", "Inio Asano"),
    ("Dead Dead Demon's Dededede Destruction", "Inio Asano"),
    ("Tomie", "Junji Ito"),
    ("Gyo", "Junji Ito"),
    ("The Drifting Classroom", "Kazuo Umezu"),
    ("I Am a Hero", "Kengo Hanazawa"),
    ("Homunculus", "Hideo Yamamoto"),
    ("Ichi the Killer", "Hideo Yamamoto"),
    ("The Flowers of Evil", "Shuzo Oshimi"),
    ("Ajin", "Gamon Sakurai"),
    ("Knights of Sidonia", "Tsutomu Nihei"),
    ("Planetes", "Makoto Yukimura"),
    ("Ooku: The Inner Chambers", "Fumi Yoshinaga"),
    ("What Did You Eat Yesterday?", "Fumi Yoshinaga"),
    ("Wandering Son", "Takako Shimura"),
    ("My Brother's Husband", "Gengoroh Tagame"),
    ("Banana Fish", "Akimi Yoshida"),
    ("Nausicaä of the Valley of the Wind", "Hayao Miyazaki"),
    ("Astro Boy", "Osamu Tezuka"),
    ("Black Jack", "Osamu Tezuka"),
    ("Golden Kamuy", "Satoru Noda"),
    ("The Beginning After the End", "TurtleMe"),
    ("Lookism", "Park Tae-jun"),
    ("True Beauty", "Yaongyi"),
    ("Noblesse", "Son Jeho & Lee Kwangsu"),
    ("Sweet Home", "Carnby Kim & Youngchan Hwang"),
    ("Lore Olympus", "Rachel Smythe"),
    ("Bungo Stray Dogs", "Kafka Asagiri & Sango Harukawa"),
    ("Tokyo Revengers", "Ken Wakui"),
    ("Beastars", "Paru Itagaki"),
    ("Land of the Lustrous", "Haruko Ichikawa"),
    ("Heavenly Delusion", "Masakazu Ishiguro"),
    ("The Ancient Magus' Bride", "Kore Yamazaki"),
    ("Toilet-Bound Hanako-kun", "AidaIro"),
    ("Bocchi the Rock!", "Aki Hamaji"),
    ("Rurouni Kenshin", "Nobuhiro Watsuki"),
    ("Yu Yu Hakusho", "Yoshihiro Togashi"),
    ("Soul Eater", "Atsushi Ohkubo"),
    ("D.Gray-man", "Katsura Hoshino"),
    ("Assassination Classroom", "Yusei Matsui"),
    ("Food Wars!", "Yuto Tsukuda & Shun Saeki"),
    ("The Way of the Househusband", "Kousuke Oono"),
    ("Zom 100", "Haro Aso & Kotaro Takata"),
    ("Alice in Borderland", "Haro Aso"),
    ("Nichijou", "Keiichi Arawi"),
    ("Azumanga Daioh", "Kiyohiko Azuma"),
    ("Chi's Sweet Home", "Konami Kanata"),
    ("Wolf Children", "Mamoru Hosoda & Yu"),
)

AUTHORS: tuple[str, ...] = tuple(dict.fromkeys(author for _, author in TITLES))

# ---------------------------------------------------------------------------
# Genres / demographics / formats.  *_PLAIN fillers carry no manga jargon (so a
# row without the ``jargon`` tag can still talk about genres); *_JARGON fillers
# always contain a JARGON term.
# ---------------------------------------------------------------------------
DEMOGRAPHICS: tuple[str, ...] = ("shōnen", "seinen", "shōjo", "josei", "kodomomuke")

GENRES_PLAIN: tuple[str, ...] = (
    "horror", "romance", "sports", "fantasy", "sci-fi", "mystery", "comedy",
    "slice of life", "action", "historical", "cooking", "thriller", "psychological",
    "martial arts", "supernatural", "drama", "adventure", "music", "school",
    "survival", "post-apocalyptic", "dark fantasy", "detective", "vampire",
    "samurai", "zombie", "coming-of-age", "workplace", "cozy", "cyberpunk",
)
GENRES_JARGON: tuple[str, ...] = (
    "shōnen", "seinen", "shōjo", "josei", "isekai", "iyashikei", "mecha", "yuri",
    "harem", "gekiga", "villainess isekai", "otome isekai", "reverse harem",
    "shōnen battle", "seinen horror", "josei romance", "murim", "kodomomuke",
)
GENRES: tuple[str, ...] = GENRES_PLAIN + GENRES_JARGON

# (singular, plural) pairs so templates can say "the {format}" or "{formats}".
FORMATS_PLAIN: tuple[tuple[str, str], ...] = (
    ("paperback", "paperbacks"),
    ("collector's edition", "collector's editions"),
    ("special edition", "special editions"),
    ("complete set", "complete sets"),
    ("signed copy", "signed copies"),
    ("print edition", "print editions"),
    ("anniversary edition", "anniversary editions"),
    ("starter set", "starter sets"),
)
FORMATS_JARGON: tuple[tuple[str, str], ...] = (
    ("tankōbon", "tankōbon volumes"),
    ("omnibus", "omnibus editions"),
    ("3-in-1 edition", "3-in-1 editions"),
    ("2-in-1 omnibus", "2-in-1 omnibuses"),
    ("deluxe hardcover", "deluxe hardcovers"),
    ("deluxe edition", "deluxe editions"),
    ("hardcover edition", "hardcover editions"),
    ("box set", "box sets"),
    ("artbook", "artbooks"),
    ("kanzenban edition", "kanzenban editions"),
    ("bunkoban", "bunkoban editions"),
)
# Whole product categories: only used in plural "{formats}" slots ("I collect manhwa"),
# never glued to a specific title (there is no "Vinland Saga manhwa edition").
CATEGORIES_JARGON: tuple[str, ...] = (
    "light novels", "manhwa", "manhua", "webtoon print editions", "artbooks",
    "isekai light novels", "one-shot collections", "Korean manhwa box sets",
)
FORMATS: tuple[str, ...] = tuple(s for s, _ in FORMATS_PLAIN + FORMATS_JARGON) + (
    "light novel", "manhwa", "webtoon", "manhua",
)

PUBLISHERS: tuple[str, ...] = (
    "VIZ Media", "Yen Press", "Kodansha", "Seven Seas", "Dark Horse",
    "Square Enix Manga", "Ghost Ship", "J-Novel Club", "Tokyopop", "Denpa",
    "Fantagraphics", "Udon Entertainment", "Vertical Comics", "Shueisha",
)

# Misc industry terms; together with the above they make up the JARGON detector.
JARGON_TERMS: tuple[str, ...] = (
    "tankōbon", "tankobon", "tankoubon", "omnibus", "omnibuses", "3-in-1", "2-in-1",
    "deluxe", "hardcover", "hardcovers", "box set", "box sets", "boxset",
    "light novel", "light novels", "manhwa", "manhua", "webtoon", "webtoons",
    "artbook", "artbooks", "art book", "simulpub", "simulpubbed", "scanlation",
    "scanlations", "one-shot", "oneshot", "mangaka", "furigana", "right-to-left",
    "colour pages", "color pages", "first print", "first printing",
    "Weekly Shōnen Jump", "Shōnen Jump", "shōnen", "shonen", "seinen", "shōjo",
    "shojo", "shoujo", "josei", "isekai", "iyashikei", "mecha", "yuri", "harem",
    "gekiga", "kanzenban", "bunkoban", "aizoban", "obi strip", "honorifics",
    "doujinshi", "murim", "otome", "villainess", "kodomomuke",
)
JARGON: tuple[str, ...] = tuple(dict.fromkeys(JARGON_TERMS + PUBLISHERS))

# ---------------------------------------------------------------------------
# Internet slang (train).  Prefix/suffix markers and adjective fillers; SLANG is
# the detection list and covers every one of them.
# ---------------------------------------------------------------------------
SLANG_PREFIXES: tuple[str, ...] = (
    "ngl", "lowkey", "highkey", "bruh", "tbh", "yo", "deadass", "istg", "omg",
    "no cap", "sheesh", "fr", "ok bestie", "ong", "smh", "lol",
)
SLANG_SUFFIXES: tuple[str, ...] = (
    "fr", "ngl", "no cap", "pls", "rn", "tbh", "lol", "lmao", "fr fr", "smh",
    "bruh", "idk", "on god", "plz", "btw", "fam", "istg",
)
SLANG_ADJ_POS: tuple[str, ...] = (
    "peak", "peak fiction", "goated", "fire", "straight fire", "bussin", "a W",
    "a banger", "the goat", "elite tier lowkey",
)
SLANG_ADJ_NEG: tuple[str, ...] = (
    "mid", "mid af", "cooked", "an L", "kinda sus", "a huge L", "so mid",
)
SLANG: tuple[str, ...] = (
    "peak", "peak fiction", "mid", "mid af", "so mid", "W", "L", "big W", "huge L",
    "goated", "goat", "ngl", "fr", "fr fr", "frfr", "lowkey", "low key", "highkey",
    "bussin", "no cap", "cooked", "fire", "straight fire", "slaps", "idk", "pls",
    "plz", "rn", "tbh", "bruh", "lol", "lmao", "fam", "sus", "vibes", "vibe",
    "vibe check", "hits different", "banger", "deadass", "istg", "smh", "no shot",
    "sheesh", "slay", "ong", "on god", "finna", "stan", "omg", "btw", "yo",
    "bestie", "say less", "elite tier",
)

# ---------------------------------------------------------------------------
# Japanese for code-switching (jp_en).  All phrases are in kana/kanji.
# ---------------------------------------------------------------------------
JP_WORD_SUBS: tuple[tuple[str, str], ...] = (
    ("manga", "漫画"), ("manga", "マンガ"), ("English", "英語"), ("Japanese", "日本語"),
    ("order", "注文"), ("return", "返品"), ("refund", "返金"), ("shipping", "配送"),
    ("discount", "割引"), ("sale", "セール"), ("coupon", "クーポン"), ("stock", "在庫"),
    ("price", "値段"), ("cover", "表紙"), ("author", "作者"), ("cart", "カート"),
    ("password", "パスワード"), ("payment", "支払い"), ("delivery", "配達"),
    ("package", "荷物"), ("book", "本"), ("store", "お店"), ("gift", "プレゼント"),
    ("volume", "巻"), ("new releases", "新刊"), ("series", "シリーズ"),
)
JP_PREFIXES: tuple[str, ...] = ("すみません、", "あの、", "えっと、", "質問です。", "ちょっと聞きたいんですが、")
JP_SUFFIXES: tuple[str, ...] = (" お願いします", " よろしくお願いします！", " です", "（笑）", " ね", " 助かります")
JP_INTENT_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("product_discovery", ("新刊はありますか？", "他にもありますか？", "探しています。", "一覧を見せてください。")),
    ("product_question", ("この漫画は英語ですか？", "何巻まで出ていますか？", "発売日はいつですか？", "日本語版ですか？")),
    ("recommendation", ("おすすめは何ですか？", "おすすめ教えてください！", "何を読めばいいですか？", "似ている漫画を探しています。")),
    ("faq", ("送料はいくらですか？", "海外発送はできますか？", "営業時間は何時までですか？", "ポイントはどうやって使いますか？")),
    ("order_tracking", ("注文はまだ届いていません。", "荷物はどこですか？", "いつ届きますか？", "追跡番号を教えてください。")),
    ("return_request", ("返品したいです。", "返金をお願いします。", "交換できますか？", "届いた本が破れていました。")),
    ("promotion", ("セールはありますか？", "クーポンはありますか？", "割引ありますか？", "まとめ買いで安くなりますか？")),
    ("checkout_help", ("支払いができません。", "カードが使えません。", "決済エラーが出ます。", "カートが更新されません。")),
    ("escalation", ("人間と話したいです。", "担当者につないでください。", "苦情を言いたいです。", "責任者を呼んでください。")),
    ("chitchat", ("こんにちは！", "ありがとうございます！", "おはようございます！", "またね！", "ロボットですか？")),
)
JAPANESE_PHRASES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [jp for _, jp in JP_WORD_SUBS]
        + [p.strip(" 、。") for p in JP_PREFIXES + JP_SUFFIXES]
        + [p for _, group in JP_INTENT_PHRASES for p in group]
    )
)

# ---------------------------------------------------------------------------
# Romanised Japanese (romaji).  ROMAJI is the detection list.
# ---------------------------------------------------------------------------
ROMAJI_WORD_SUBS: tuple[tuple[str, str], ...] = (
    ("please", "onegai"), ("thanks", "arigatou"), ("thank you", "arigatou gozaimasu"),
    ("sorry", "gomen"), ("excuse me", "sumimasen"), ("amazing", "sugoi"),
    ("awesome", "sugoi"), ("cute", "kawaii"), ("cool", "kakkoii"),
    ("interesting", "omoshiroi"), ("really", "hontou ni"), ("English", "eigo"),
    ("Japanese", "nihongo"), ("hurry", "hayaku"), ("recommendation", "osusume"),
)
ROMAJI_PREFIXES: tuple[str, ...] = (
    "sumimasen,", "ano,", "konnichiwa!", "ohayou!", "nee senpai,", "chotto matte,", "yabai,",
)
ROMAJI_SUFFIXES: tuple[str, ...] = (
    "onegaishimasu", "arigatou!", "yoroshiku onegaishimasu", "(yabai)", "sugoi",
    "kudasai", "domo arigato", "dou shiyou", "ganbatte", "daisuki",
)
ROMAJI_INTENT_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("product_discovery", ("yomitai!", "zettai yomitai")),
    ("product_question", ("kore wa eigo desu ka?", "nankan made arimasu ka?")),
    ("recommendation", ("osusume wa?", "omoshiroi no aru?")),
    ("faq", ("wakarimasen", "naruhodo")),
    ("order_tracking", ("itsu todokimasu ka?", "doko desu ka?")),
    ("return_request", ("gomen nasai", "dou shiyou")),
    ("promotion", ("yasui no aru?", "tanoshimi")),
    ("checkout_help", ("wakarimasen", "tasukete")),
    ("escalation", ("hayaku onegai", "mou ii")),
    ("chitchat", ("mata ne!", "oyasumi!", "otsukare!", "konbanwa!")),
)
ROMAJI: tuple[str, ...] = (
    "kawaii", "senpai", "sugoi", "sugee", "onegaishimasu", "onegai",
    "yoroshiku onegaishimasu", "arigatou", "arigato", "arigatou gozaimasu",
    "domo arigato", "sumimasen", "konnichiwa", "ohayou", "ohayo", "konbanwa",
    "yomitai", "zettai yomitai", "kore wa eigo desu ka", "eigo", "nihongo", "daisuki",
    "yabai", "nani", "sou desu ne", "ganbatte", "otsukare", "oyasumi", "mata ne",
    "hontou ni", "omoshiroi", "tanoshimi", "naruhodo", "chotto matte", "dou shiyou",
    "kudasai", "hayaku", "zettai", "kakkoii", "subarashii", "tsuzuki",
    "itsu todokimasu ka", "doko desu ka", "wakarimasen", "gomen", "gomen nasai",
    "osusume", "nankan made arimasu ka", "ano", "nee senpai", "yasui", "tasukete",
    "mou ii", "desu",
)

# ---------------------------------------------------------------------------
# Typos and ASR confusions.
# ---------------------------------------------------------------------------
COMMON_TYPOS: tuple[tuple[str, str], ...] = (
    ("the", "teh"), ("receive", "recieve"), ("received", "recieved"), ("where", "wher"),
    ("order", "ordr"), ("edition", "edtion"), ("volume", "voluem"), ("definitely", "definately"),
    ("please", "plese"), ("because", "becuase"), ("which", "wich"), ("really", "realy"),
    ("available", "availble"), ("tracking", "traking"), ("shipping", "shiping"),
    ("address", "adress"), ("payment", "payemnt"), ("refund", "refnud"), ("return", "retrun"),
    ("package", "pakage"), ("delivered", "deliverd"), ("recommend", "reccomend"),
    ("something", "somthing"), ("anything", "anythign"), ("series", "seires"),
    ("english", "engish"), ("translation", "translaton"), ("discount", "dicount"),
    ("coupon", "coupn"), ("checkout", "chekout"), ("account", "acount"),
    ("password", "pasword"), ("know", "konw"), ("want", "wnat"), ("just", "jsut"),
    ("with", "wiht"), ("about", "abotu"), ("still", "stil"), ("already", "alredy"),
    ("tomorrow", "tommorow"), ("separate", "seperate"), ("different", "diffrent"),
    ("manga", "mnaga"), ("chapter", "chpater"), ("store", "stroe"), ("what", "waht"),
    ("when", "wehn"), ("arrived", "arived"), ("damaged", "damged"), ("missing", "misisng"),
    ("cancel", "cancle"), ("human", "humna"), ("someone", "somone"), ("problem", "problme"),
    ("error", "eror"), ("favourite", "favroite"), ("similar", "simillar"),
    ("interested", "intrested"), ("probably", "probly"), ("literally", "literaly"),
    ("there", "thre"), ("have", "ahve"), ("your", "yuor"), ("does", "deos"),
    ("this", "tihs"), ("that", "taht"), ("sale", "slae"), ("price", "prcie"),
)
KEYBOARD_NEIGHBOURS: tuple[tuple[str, str], ...] = (
    ("q", "wa"), ("w", "qes"), ("e", "wrd"), ("r", "etf"), ("t", "ryg"), ("y", "tuh"),
    ("u", "yij"), ("i", "uok"), ("o", "ipl"), ("p", "ol"), ("a", "qsz"), ("s", "adwx"),
    ("d", "sfec"), ("f", "dgrv"), ("g", "fhtb"), ("h", "gjyn"), ("j", "hkun"), ("k", "jlim"),
    ("l", "kop"), ("z", "asx"), ("x", "zsdc"), ("c", "xdfv"), ("v", "cfgb"), ("b", "vghn"),
    ("n", "bhjm"), ("m", "njk"),
)

# (written, as a speech recogniser hears it); matched case-insensitively on words.
ASR_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("one piece", "won piece"), ("berserk", "burr serk"), ("frieren", "free wren"),
    ("naruto", "narrow toe"), ("jujutsu kaisen", "jujitsu kaisen"),
    ("chainsaw man", "chain saw man"), ("spy x family", "spy ex family"),
    ("vinland saga", "vin land saga"), ("dandadan", "dan da dan"),
    ("kagurabachi", "kagura bachi"), ("oshi no ko", "oh she no co"),
    ("uzumaki", "ooze maki"), ("haikyu", "high cue"), ("dorohedoro", "door oh head oro"),
    ("yotsuba", "yotsu ba"), ("witch hat atelier", "which hat atelier"),
    ("delicious in dungeon", "delicious and dungeon"), ("mushoku tensei", "mush oku ten say"),
    ("re:zero", "ray zero"), ("overlord", "over lord"), ("tokyo ghoul", "tokyo goal"),
    ("hunter x hunter", "hunter ex hunter"), ("goodnight punpun", "good night pun pun"),
    ("kaiju no. 8", "kaiju number eight"), ("sakamoto days", "sock a moto days"),
    ("akane-banashi", "a connie banashi"), ("fullmetal alchemist", "full metal alchemist"),
    ("my hero academia", "my hero academy"), ("inuyasha", "in you yasha"),
    ("vagabond", "vaga bond"), ("mob psycho 100", "mob psycho one hundred"),
    ("the apothecary diaries", "the apothecary dairies"), ("dr. stone", "doctor stone"),
    ("20th century boys", "twentieth century boys"), ("blame!", "blame"),
    ("kaguya-sama", "kaguya summa"), ("isekai", "is a kai"), ("manhwa", "man wa"),
    ("seinen", "say nen"), ("tankobon", "tank oh bon"),
    ("where", "wear"), ("for", "four"), ("to", "two"), ("buy", "by"), ("sale", "sail"),
    ("right", "write"), ("here", "hear"), ("there", "their"), ("wait", "weight"),
    ("whole", "hole"), ("new", "knew"), ("week", "weak"), ("mail", "male"),
    ("would", "wood"), ("our", "hour"), ("manga", "mango"), ("refund", "re fund"),
    ("return", "re turn"), ("cart", "card"), ("know", "no"), ("i'll", "aisle"),
)

# ---------------------------------------------------------------------------
# Novel vocabulary for the drift scenario: recent series and newer slang that the
# train generator never emits.  Disjoint from everything above (tests check).
# ---------------------------------------------------------------------------
NOVEL_TITLES: tuple[tuple[str, str], ...] = (
    ("Ichi the Witch", "Osamu Nishi & Shiro Usazaki"),
    ("Kill Blue", "Tadatoshi Fujimaki"),
    ("Nue's Exorcist", "Kota Kawae"),
    ("Gachiakuta", "Kei Urana"),
    ("Ruri Dragon", "Masaoki Shindo"),
    ("Blue Box", "Kouji Miura"),
    ("The Summer Hikaru Died", "Mokumokuren"),
    ("Kindergarten Wars", "You Chiba"),
    ("Sanda", "Paru Itagaki"),
    ("Medalist", "Tsurumaikada"),
    ("Centuria", "Tohru Kuramori"),
    ("Witch Watch", "Kenta Shinohara"),
    ("Me & Roboco", "Shuhei Miyazaki"),
    ("Undead Unluck", "Yoshifumi Tozuka"),
    ("Mission: Yozakura Family", "Hitsuji Gondaira"),
    ("Cipher Academy", "Nisioisin & Yuji Iwasaki"),
    ("Tougen Anki", "Yura Urushibara"),
    ("Gokurakugai", "Yuto Sano"),
    ("Insomniacs After School", "Makoto Ojiro"),
    ("The Fragrant Flower Blooms with Dignity", "Saka Mikami"),
    ("Blue Orchestra", "Makoto Akui"),
    ("Orb: On the Movements of the Earth", "Uoto"),
    ("Hirayasumi", "Keigo Shinzo"),
    ("Shangri-La Frontier", "Katarina & Ryosuke Fuji"),
    ("Too Many Losing Heroines!", "Takibi Amamori"),
    ("Alya Sometimes Hides Her Feelings in Russian", "SunSunSun"),
    ("Wind Breaker", "Satoru Nii"),
    ("Boy's Abyss", "Ryo Minenami"),
    ("Kowloon Generic Romance", "Jun Mayuzuki"),
    ("Fool Night", "Kasumi Yasuda"),
    ("Dead Account", "Shizumu Watanabe"),
    ("The Elusive Samurai", "Yusei Matsui"),
    ("Goodbye, Eri", "Tatsuki Fujimoto"),
    ("Sentenced to Be a Hero", "Rocket Shokai"),
)

NOVEL_SLANG_PREFIXES: tuple[str, ...] = (
    "no because", "ok aura check:", "not me being delulu but", "unc here,",
    "pookie,", "sigma question:", "locked in:", "it's giving impatient but",
)
NOVEL_SLANG_SUFFIXES: tuple[str, ...] = (
    "6-7", "+1000 aura", "-500 aura", "it's giving main character", "zero rizz",
    "I'm crashing out", "let him cook", "very demure very mindful", "brainrot energy",
    "my roman empire", "no rizz needed", "it's giving desperate", "fanum tax",
)
NOVEL_SLANG_ADJ_POS: tuple[str, ...] = (
    "aura", "pure aura", "absolute cinema", "main character energy", "rizzler-level",
)
NOVEL_SLANG_ADJ_NEG: tuple[str, ...] = (
    "chopped", "so ohio", "brainrot", "npc-tier", "skibidi", "delulu",
)
NOVEL_SLANG: tuple[str, ...] = (
    "aura", "aura farming", "rizz", "rizzler", "delulu", "it's giving", "6-7",
    "skibidi", "sigma", "fanum tax", "mewing", "looksmaxxing", "brainrot", "chopped",
    "crashing out", "glazing", "mogged", "unc", "npc", "demure", "very mindful",
    "absolute cinema", "cinema", "locked in", "lock in", "let him cook", "pookie",
    "gagged", "tweaking", "main character energy", "roman empire", "ohio", "no because",
    "only in ohio", "clock it",
)

# ---------------------------------------------------------------------------
# Other slot fillers (plain English, vocabulary-neutral).
# ---------------------------------------------------------------------------
PERSONS: tuple[str, ...] = (
    "my nephew", "my niece", "my daughter", "my son", "my little brother", "my sister",
    "my girlfriend", "my boyfriend", "my husband", "my wife", "my best friend",
    "a coworker", "my dad", "my roommate", "my students", "my cousin", "my mum",
)
CARRIERS: tuple[str, ...] = ("UPS", "USPS", "FedEx", "DHL", "Royal Mail", "Canada Post", "Japan Post", "Australia Post")
PAYMENTS: tuple[str, ...] = (
    "PayPal", "Apple Pay", "Google Pay", "Visa", "Mastercard", "Amex", "a debit card",
    "Klarna", "Shop Pay", "a prepaid card",
)
COUNTRIES: tuple[str, ...] = (
    "Canada", "Australia", "Germany", "Brazil", "the UK", "Ireland", "Mexico", "Japan",
    "New Zealand", "France", "the Philippines", "Singapore", "Norway", "South Africa", "Poland",
)
EVENTS: tuple[str, ...] = (
    "Black Friday", "Cyber Monday", "Christmas", "summer", "back-to-school", "New Year",
    "Golden Week", "Free Comic Book Day", "anniversary", "spring", "Boxing Day",
    "Halloween", "Valentine's Day",
)
WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)
DEFECTS: tuple[str, ...] = (
    "the cover is torn", "the spine is cracked", "a bunch of pages are stuck together",
    "it arrived water damaged", "some pages are printed upside down",
    "there's a big dent in the corner", "the shrink wrap was ripped and the cover is scratched",
    "half the pages are blank", "it smells like smoke", "a whole chapter is missing",
    "the print is blurry on every page", "the dust jacket is ripped",
    "there's a coffee stain on the edge", "the binding is coming apart",
)
MISPRINTS: tuple[str, ...] = (
    "one chapter is printed twice and the next one is missing",
    "the pages jump from the middle of one chapter to the end of the book",
    "the speech bubbles are empty on about ten pages",
    "the cover says one volume but the inside is a different one",
    "the ink is smeared so badly you can't read the text",
)
RETURN_REASONS: tuple[str, ...] = (
    "I ordered it twice by accident", "it's the wrong volume", "I changed my mind",
    "it was a duplicate gift", "my kid already has it", "I bought the wrong series",
    "it's not the edition I wanted", "it came way too late to be a gift",
)
SETTINGS: tuple[str, ...] = (
    "high school", "space", "feudal Japan", "a post-apocalyptic city", "an office",
    "a small seaside town", "Tokyo", "a boarding school", "a fantasy world",
    "a hospital", "the Edo period", "ancient China", "Victorian London", "a tiny village",
)
THEMES: tuple[str, ...] = (
    "cooking", "cats", "chess", "baseball", "volleyball", "ghosts", "samurai", "music",
    "vampires", "time travel", "mahjong", "space travel", "pirates", "dragons", "boxing",
    "art school", "detectives", "farming", "camping", "motorcycles", "witches", "figure skating",
)
PROMO_CODES: tuple[str, ...] = ("MANGA20", "SAVE10", "WELCOME15", "SPRING5", "BUY2GET1", "VOLUME15", "SHELF25", "FREESHIP")
ERROR_CODES: tuple[str, ...] = ("PX-402", "ERR_PAY_07", "E1043", "CHK-500", "CARD_DECLINED_3", "TIMEOUT-19")
