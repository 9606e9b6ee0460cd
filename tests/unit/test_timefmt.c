int main(void) { return 0; } /* placeholder until written */
