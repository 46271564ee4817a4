package ai.k2j.plan;

/** A plan cannot be made as requested (bad input, or no legal placement); the message says why and what would work. */
public class PlanException extends RuntimeException {
    public PlanException(String message) {
        super(message);
    }
}
