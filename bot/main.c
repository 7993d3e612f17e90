/* main — placeholder until the command dispatcher lands. */
#include <stdio.h>
int main(void)
{
    puts("codebot");
    return 0;
}
