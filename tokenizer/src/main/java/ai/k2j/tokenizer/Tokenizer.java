package ai.k2j.tokenizer;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;

/**
 * Byte-level BPE tokenizer read from an HF {@code tokenizer.json} (Qwen2 family), id-exact to HF
 * {@code tokenizers}. Thread-safe after construction.
 *
 * <p>Encoding follows HF's pipeline: added tokens are split out of the raw text (leftmost-longest,
 * honouring lstrip/rstrip/single_word/normalized), the rest is normalized (e.g. NFC), pre-tokenized
 * (regex Split, ByteLevel) and merged by BPE. Java strings may hold lone surrogates, which Rust
 * strings cannot; they are encoded as U+FFFD. Post-processors, truncation and padding are not
 * applied (ids are those of {@code encode(text, add_special_tokens=False)}).
 */
public final class Tokenizer {

    private final Bpe bpe;
    private final AddedVocabulary addedVocabulary;
    private final UnaryOperator<String> normalizer;
    private final PreTokenizer preTokenizer;          // null: the whole piece is one word
    private final boolean byteLevelDecoder;           // false: tokens are joined with " " (HF without decoder)
    private final Map<String, Integer> vocab;
    private final Map<String, Integer> addedIds;
    private final String[] tokens;                    // by id; null where unused
    private final boolean[] special;
    private final int[] specialIds;
    private final byte[] decodeBytes;                 // concatenated decoded bytes of every id
    private final int[] decodeOffsets;                // id -> [decodeOffsets[id], decodeOffsets[id+1])
    private final ChatTemplate chatTemplate;
    /** the model's own template, rendered by {@link Jinja}; null without one (then {@link #chatTemplate} renders) */
    private final JinjaChatTemplate jinjaTemplate;

    Tokenizer(TokenizerJson.Parsed p) {
        this.bpe = p.bpe();
        this.normalizer = p.normalizer();
        this.preTokenizer = p.preTokenizer();
        this.byteLevelDecoder = p.byteLevelDecoder();
        this.vocab = p.vocab();
        this.addedVocabulary = new AddedVocabulary(p.addedTokens(), p.normalizer());
        this.chatTemplate = ChatTemplate.fromTemplate(p.chatTemplate());

        int size = 0;
        for (int id : vocab.values()) {
            size = Math.max(size, id + 1);
        }
        for (AddedVocabulary.AddedToken t : p.addedTokens()) {
            size = Math.max(size, t.id() + 1);
        }
        this.tokens = new String[size];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            tokens[e.getValue()] = e.getKey();
        }
        this.special = new boolean[size];
        this.addedIds = new java.util.HashMap<>();
        for (AddedVocabulary.AddedToken t : p.addedTokens()) {
            tokens[t.id()] = t.content(); // added tokens win over the model vocabulary, as in HF decode
            addedIds.put(t.content(), t.id());
        }
        // HF marks specialness by content: every id whose string is a special token's content
        java.util.Set<String> specialContents = new java.util.HashSet<>();
        for (AddedVocabulary.AddedToken t : p.addedTokens()) {
            if (t.special()) {
                specialContents.add(t.content());
            }
        }
        int nSpecial = 0;
        for (int id = 0; id < size; id++) {
            if (tokens[id] != null && specialContents.contains(tokens[id])) {
                special[id] = true;
                nSpecial++;
            }
        }
        this.specialIds = new int[nSpecial];
        for (int id = 0, k = 0; id < size; id++) {
            if (special[id]) {
                specialIds[k++] = id;
            }
        }
        // what each id contributes to decoded bytes (ByteLevel decoder: alphabet chars back to bytes,
        // or the token's own UTF-8 when it holds a char outside the alphabet)
        this.decodeOffsets = new int[size + 1];
        java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream(size * 8);
        for (int id = 0; id < size; id++) {
            decodeOffsets[id] = all.size();
            String t = tokens[id];
            if (t != null) {
                byte[] b = byteLevelDecoder ? ByteLevel.unmap(t) : null;
                all.writeBytes(b != null ? b : Utf8.encode(t));
            }
        }
        decodeOffsets[size] = all.size();
        this.decodeBytes = all.toByteArray();
        this.jinjaTemplate = jinjaTemplate(p.chat(), List.copyOf(specialContents));
    }

    /**
     * The model's template for the Jinja renderer, or null when there is none; a template the renderer cannot
     * parse leaves the built-in renderer of its style in charge, with a warning naming the problem.
     */
    private static JinjaChatTemplate jinjaTemplate(TokenizerJson.ChatTemplateConfig chat, List<String> specials) {
        if (chat.template() == null && chat.toolUseTemplate() == null) {
            return null;
        }
        try {
            return new JinjaChatTemplate(chat.template(), chat.toolUseTemplate(), chat.specialTokens(), specials,
                    java.time.Clock.systemDefaultZone());
        } catch (ChatTemplateException e) {
            System.getLogger(Tokenizer.class.getName()).log(System.Logger.Level.WARNING, "the chat template cannot"
                    + " be parsed (" + e.getMessage() + "); using the built-in renderer of its style instead");
            return null;
        }
    }

    /**
     * {@code path} is a tokenizer.json or a directory holding one (plus optional tokenizer_config.json).
     * A tokenizer_config.json next to the tokenizer.json supplies the chat template.
     *
     * @throws TokenizerFormatException if a file is missing, malformed or uses an unsupported component
     */
    public static Tokenizer load(Path path) {
        return new Tokenizer(TokenizerJson.load(path));
    }

    /**
     * A tokenizer from a GGUF file's {@code tokenizer.ggml.*} metadata (byte-level BPE, {@code model = "gpt2"}),
     * tokenizing as the tokenizer.json it was converted from; see {@link GgufVocabulary} for the mapping.
     *
     * @param source       the GGUF file (named in errors)
     * @param tokenTypes   tokenizer.ggml.token_type, or null when absent (every token NORMAL)
     * @param pre          tokenizer.ggml.pre (qwen2, llama-bpe, default), or null
     * @param chatTemplate tokenizer.chat_template, or null
     * @throws TokenizerFormatException naming the file and the metadata field on anything it cannot use
     */
    public static Tokenizer fromGguf(Path source, String model, List<String> tokens, int[] tokenTypes,
                                     List<String> merges, String pre, String chatTemplate) {
        return GgufVocabulary.build(source, model, tokens, tokenTypes, merges, pre, chatTemplate);
    }

    /** Encodes text; added/special tokens written inline (e.g. {@code <|im_start|>}) become their ids. */
    public int[] encode(String text) {
        return encode(text, true);
    }

    /** Encodes text; with {@code allowSpecial=false} special tokens in the text are treated as plain text. */
    public int[] encode(String text, boolean allowSpecial) {
        return encode(text, allowSpecial ? AddedVocabulary.SpecialFilter.ALL : AddedVocabulary.SpecialFilter.NONE);
    }

    /**
     * Renders the chat template and encodes it. With {@code specialTokensInContent=false} (what a server
     * should do with untrusted messages) special tokens written inside a message's text are encoded as plain
     * text, so a user cannot close their turn or open a system turn, while the template's own special tokens
     * stay control tokens. {@code true} is HF's behaviour ({@code tokenizer.apply_chat_template(...,
     * tokenize=True)}): the rendered string is encoded as a whole.
     */
    public int[] encodeChat(List<ChatMessage> messages, boolean addGenerationPrompt, boolean specialTokensInContent) {
        return encodeChat(messages, addGenerationPrompt, specialTokensInContent, true);
    }

    /** As {@link #encodeChat(List, boolean, boolean)}, with Qwen3's {@code enable_thinking} (false: no reasoning). */
    public int[] encodeChat(List<ChatMessage> messages, boolean addGenerationPrompt, boolean specialTokensInContent,
                            boolean enableThinking) {
        return encodeChat(messages, null, addGenerationPrompt, specialTokensInContent, enableThinking);
    }

    /**
     * As {@link #encodeChat(List, boolean, boolean, boolean)}, with OpenAI tool definitions ({@code tools}: the
     * request's {@code tools} array as plain Java values — Map, List, String, Number, Boolean — or null) rendered
     * by the model's template. A model without a template (the built-in ChatML) cannot take tools.
     *
     * @throws ChatTemplateException when the template cannot render these messages (it raised, or used a feature
     *                               the renderer lacks)
     */
    public int[] encodeChat(List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt,
                            boolean specialTokensInContent, boolean enableThinking) {
        ChatTemplate.Rendered r = render(messages, tools, addGenerationPrompt, enableThinking, !specialTokensInContent);
        if (specialTokensInContent) {
            return encode(r.text(), true);
        }
        int[] spans = r.contentSpans();
        return encode(r.text(), (start, end) -> {
            for (int k = 0; k < spans.length; k += 2) {
                if (spans[k] < end && start < spans[k + 1]) {
                    return false;
                }
            }
            return true;
        });
    }

    private int[] encode(String text, AddedVocabulary.SpecialFilter specialFilter) {
        Objects.requireNonNull(text, "text");
        IntList out = new IntList(Math.max(16, text.length() / 3));
        PreTokenizer.Sink toModel = (s, from, to) -> out.addAll(bpe.tokenize(from == 0 && to == s.length() ? s : s.substring(from, to)));
        addedVocabulary.split(Utf8.replaceLoneSurrogates(text), specialFilter, normalizer, piece -> {
            if (piece.tokenId() >= 0) {
                out.add(piece.tokenId());
            } else if (!piece.text().isEmpty()) {
                if (preTokenizer == null) {
                    toModel.accept(piece.text(), 0, piece.text().length());
                } else {
                    preTokenizer.run(piece.text(), 0, piece.text().length(), toModel);
                }
            }
        });
        return out.toArray();
    }

    /** Decodes ids to text (special tokens included as their text unless {@code skipSpecial}). Unknown ids are skipped, as in HF. */
    public String decode(int[] ids, boolean skipSpecial) {
        if (!byteLevelDecoder) {
            StringBuilder sb = new StringBuilder();
            for (int id : ids) {
                if (known(id) && !(skipSpecial && special[id])) {
                    if (!sb.isEmpty()) {
                        sb.append(' ');
                    }
                    sb.append(tokens[id]);
                }
            }
            return sb.toString();
        }
        int len = 0;
        for (int id : ids) {
            if (known(id) && !(skipSpecial && special[id])) {
                len += decodeOffsets[id + 1] - decodeOffsets[id];
            }
        }
        byte[] buf = new byte[len];
        int o = 0;
        for (int id : ids) {
            if (known(id) && !(skipSpecial && special[id])) {
                int n = decodeOffsets[id + 1] - decodeOffsets[id];
                System.arraycopy(decodeBytes, decodeOffsets[id], buf, o, n);
                o += n;
            }
        }
        return Utf8.decodeLossy(buf, 0, len);
    }

    /**
     * The bytes id {@code id} contributes to decoded text (a byte-level token may hold part of a UTF-8 character;
     * a special token its text), or an empty array for an unknown id.
     */
    public byte[] tokenBytes(int id) {
        if (!known(id)) {
            return new byte[0];
        }
        if (!byteLevelDecoder) {
            return Utf8.encode(tokens[id]);
        }
        return Arrays.copyOfRange(decodeBytes, decodeOffsets[id], decodeOffsets[id + 1]);
    }

    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /** A decoder for streaming output that never emits half a UTF-8 character. */
    public StreamingDecoder streamingDecoder(boolean skipSpecial) {
        return byteLevelDecoder ? new ByteStreamingDecoder(skipSpecial) : new JoiningStreamingDecoder(skipSpecial);
    }

    /** Size of the id space (base vocabulary plus added tokens): one more than the largest id. */
    public int vocabSize() {
        return tokens.length;
    }

    public OptionalInt id(String token) {
        Integer id = addedIds.get(token);
        if (id == null) {
            id = vocab.get(token);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** The token's string form (byte-level alphabet for normal tokens), or null when out of range. */
    public String token(int id) {
        return id >= 0 && id < tokens.length ? tokens[id] : null;
    }

    public boolean isSpecial(int id) {
        return id >= 0 && id < special.length && special[id];
    }

    /** Ids of the special (added, special=true) tokens, ascending. */
    public int[] specialIds() {
        return specialIds.clone();
    }

    /**
     * The prompt text of the model's own chat template (tokenizer_config.json {@code chat_template} or
     * chat_template.jinja), rendered as HF {@code apply_chat_template(..., tokenize=False)} renders it (see
     * {@link #applyChatTemplate(List, List, boolean, boolean)}). Without a template, or with one the Jinja renderer
     * cannot parse, the built-in renderer of its style: ChatML
     * ({@code <|im_start|>{role}\n{content}<|im_end|>\n} per message, then {@code <|im_start|>assistant\n}), with
     * Qwen2.5's default system prompt, Qwen3's {@code <think>} handling or Llama 3's headers when the template text
     * shows that style.
     */
    public String applyChatTemplate(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return applyChatTemplate(messages, addGenerationPrompt, true);
    }

    /**
     * The prompt text exactly as HF {@code tokenizer.apply_chat_template(messages, tools=tools,
     * add_generation_prompt=..., tokenize=False, enable_thinking=...)} renders it with the model's template.
     *
     * @throws ChatTemplateException when the template cannot render these messages
     */
    public String applyChatTemplate(List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt,
                                    boolean enableThinking) {
        return render(messages, tools, addGenerationPrompt, enableThinking, false).text();
    }

    /** Whether the model has its own chat template that the Jinja renderer runs (false: built-in ChatML). */
    public boolean hasChatTemplate() {
        return jinjaTemplate != null;
    }

    private ChatTemplate.Rendered render(List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt,
                                         boolean enableThinking, boolean markSpecials) {
        if (jinjaTemplate != null) {
            return jinjaTemplate.render(List.copyOf(messages), tools, addGenerationPrompt,
                    Map.of("enable_thinking", enableThinking), markSpecials);
        }
        if (tools != null) {
            throw new ChatTemplateException("this model has no chat template of its own, and the built-in ChatML"
                    + " format has no way to present tools");
        }
        return chatTemplate.render(List.copyOf(messages), addGenerationPrompt, enableThinking);
    }

    /**
     * As {@link #applyChatTemplate(List, boolean)}, with Qwen3's {@code enable_thinking}: false appends an empty
     * {@code <think>\n\n</think>\n\n} to the generation prompt so that the model answers without reasoning
     * (the template's own switch; the {@code /think} and {@code /no_think} tags in a user message are read by the
     * model itself). Templates without thinking ignore it.
     */
    public String applyChatTemplate(List<ChatMessage> messages, boolean addGenerationPrompt, boolean enableThinking) {
        return render(messages, null, addGenerationPrompt, enableThinking, false).text();
    }

    /** Whether the chat template is Qwen3's (it has {@code <think>} reasoning blocks). */
    public boolean chatTemplateThinks() {
        return chatTemplate.style() == ChatTemplate.Style.QWEN3;
    }

    private boolean known(int id) {
        return id >= 0 && id < tokens.length && tokens[id] != null;
    }

    /** Byte-level streaming: holds back only the bytes of a character that is still incomplete. */
    private final class ByteStreamingDecoder implements StreamingDecoder {
        private final boolean skipSpecial;
        private byte[] pending = new byte[64];
        private int len;
        private char[] chars = new char[64];

        ByteStreamingDecoder(boolean skipSpecial) {
            this.skipSpecial = skipSpecial;
        }

        @Override
        public String push(int id) {
            if (!known(id) || (skipSpecial && special[id])) {
                return "";
            }
            int n = decodeOffsets[id + 1] - decodeOffsets[id];
            if (len + n > pending.length) {
                pending = Arrays.copyOf(pending, Math.max(pending.length * 2, len + n));
            }
            System.arraycopy(decodeBytes, decodeOffsets[id], pending, len, n);
            len += n;
            int ready = len - Utf8.incompleteTail(pending, len);
            return ready == 0 ? "" : take(ready);
        }

        @Override
        public String flush() {
            return len == 0 ? "" : take(len);
        }

        private String take(int ready) {
            if (chars.length < ready) {
                chars = new char[Math.max(chars.length * 2, ready)];
            }
            int nChars = Utf8.decodeLossy(pending, 0, ready, chars);
            System.arraycopy(pending, ready, pending, 0, len - ready);
            len -= ready;
            return new String(chars, 0, nChars);
        }
    }

    /** HF without a decoder joins token strings with single spaces. */
    private final class JoiningStreamingDecoder implements StreamingDecoder {
        private final boolean skipSpecial;
        private boolean first = true;

        JoiningStreamingDecoder(boolean skipSpecial) {
            this.skipSpecial = skipSpecial;
        }

        @Override
        public String push(int id) {
            if (!known(id) || (skipSpecial && special[id])) {
                return "";
            }
            String t = first ? tokens[id] : " " + tokens[id];
            first = false;
            return t;
        }

        @Override
        public String flush() {
            first = true;
            return "";
        }
    }

    /** Growable int array. */
    static final class IntList {
        private int[] a;
        private int n;

        IntList(int cap) {
            a = new int[cap];
        }

        void add(int v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, n * 2);
            }
            a[n++] = v;
        }

        void addAll(int[] vs) {
            if (n + vs.length > a.length) {
                a = Arrays.copyOf(a, Math.max(a.length * 2, n + vs.length));
            }
            System.arraycopy(vs, 0, a, n, vs.length);
            n += vs.length;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
