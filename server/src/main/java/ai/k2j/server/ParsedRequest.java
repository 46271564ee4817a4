package ai.k2j.server;

import ai.k2j.scaffold.ScaffoldOptions;
import ai.k2j.tokenizer.ChatMessage;

import java.util.List;

/**
 * A validated completion request, chat or text. {@code promptIds} is what the model sees (the chat template
 * applied for chat); {@code maxTokens} is resolved (a default fills the rest of the context).
 *
 * @param scaffold    plan-before-you-think / best-of-N settings (chat only), or null for a plain completion
 * @param agent       tools, tool_choice and the output grammar (chat; {@link AgentOptions#NONE} otherwise)
 * @param topLogprobs -1: no logprobs; else how many alternatives per token to report
 */
record ParsedRequest(boolean chat, List<ChatMessage> messages, int[] promptIds, int maxTokens, double temperature,
                     double topP, int topK, double minP, long seed, List<String> stop, int n, boolean stream,
                     boolean includeUsage, boolean ignoreEos, boolean speculative, ScaffoldOptions scaffold,
                     AgentOptions agent, int topLogprobs) {
}
